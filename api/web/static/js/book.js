// One book (a batch): every chapter's state with its player and a retry button,
// the audiobook and manifest to download, cancel, and a re-render after lexicon
// edits. Read every 2 seconds while anything is still moving; players are kept
// (not rebuilt) between reads so listening is not interrupted.
import { call } from "./api.js";
import {
  $, badge, errorInWords, fmtDate, fmtSeconds, h, onClick, showError, showOk, start,
} from "./ui.js";

const batchId = document.body.dataset.id;
const path = `/v1/batches/${encodeURIComponent(batchId)}`;
const FINISHED = new Set(["succeeded", "partially_failed", "failed", "canceled"]);
const BUILDING = new Set(["pending", "building"]);
const RETRYABLE = new Set(["succeeded", "failed", "canceled"]);
let timer = null;
let combinedKey = null;

function chapterNode(item) {
  const li = h("li", { "data-index": item.index, "data-job": "" });
  li.append(
    h("div", { class: "head" },
      h("strong", {}, `${item.index + 1}. ${item.title}`),
      h("span", { class: "state" }),
      h("button", { type: "button", class: "small retry", "aria-label": `Retry chapter ${item.index + 1}: ${item.title}` }, "Retry")),
    h("progress", { max: 100, value: 0, "aria-label": `Chapter ${item.index + 1} progress` }),
    h("p", { class: "help info" }),
    h("div", { class: "error-box", hidden: true }),
    h("audio", { controls: true, preload: "metadata", hidden: true, "aria-label": `Chapter ${item.index + 1}: ${item.title}` }),
  );
  onClick(li.querySelector(".retry"), async () => {
    await call("POST", item.links.retry, { json: {} });
    showOk(`Chapter ${item.index + 1} will be narrated again.`);
    await refresh();
  });
  return li;
}

function showChapter(li, item, batch) {
  li.querySelector(".state").replaceChildren(badge(item.status));
  li.querySelector("progress").value = Math.round(item.progress.percent || 0);
  const info = [`${item.chars.toLocaleString()} characters`];
  if (item.attempts > 1) info.push(`${item.attempts} attempts`);
  if (item.output) info.push(fmtSeconds(item.output.duration_s));
  if (item.replaced_jobs.length) info.push(`retried ${item.replaced_jobs.length}×`);
  li.querySelector(".info").textContent = info.join(" · ");
  const err = li.querySelector(".error-box");
  err.hidden = !item.error;
  if (item.error) err.textContent = errorInWords(item.error);
  const audio = li.querySelector("audio");
  // A new job (a retry) means new audio; the same job keeps its player as it is.
  if (item.output && item.output.download_url && li.dataset.job !== item.job_id) {
    audio.src = item.output.download_url;
    li.dataset.job = item.job_id;
  }
  audio.hidden = !item.output;
  li.querySelector(".retry").hidden =
    !RETRYABLE.has(item.status) || batch.status === "canceled";
}

function showOutputs(batch) {
  const { combined, manifest, assembly } = batch.outputs;
  const readAlong = batch.outputs.read_along;
  $("#read-along").hidden = !(readAlong && readAlong.download_url);
  if (readAlong && readAlong.download_url) $("#read-along").href = readAlong.download_url;
  const link = $("#combined");
  link.hidden = !(combined && combined.download_url);
  if (combined && combined.download_url) {
    link.href = combined.download_url;
    link.textContent = `Download the audiobook (${combined.format}, ${fmtSeconds(combined.duration_s)})`;
    const key = `${combined.key}:${assembly.built_generation}`;
    if (combinedKey !== key) {
      $("#book-player").src = combined.download_url;
      combinedKey = key;
    }
    $("#book-player").hidden = false;
  }
  $("#manifest").hidden = !(manifest && manifest.download_url);
  if (manifest && manifest.download_url) $("#manifest").href = manifest.download_url;
  const words = {
    waiting: "The audiobook is made once every chapter is done.",
    pending: "Every chapter is done; the audiobook is queued to be built.",
    building: "The audiobook is being built.",
    done: `The audiobook was built${batch.finished_at ? ` ${fmtDate(batch.finished_at)}` : ""}.`,
    failed: `The audiobook could not be built: ${assembly.error || "no reason was given"}.`,
    skipped: "Not every chapter succeeded: retry the failed ones to build the audiobook.",
  };
  $("#book-assembly").textContent = words[assembly.state] || "";
}

function show(batch) {
  $("#book-title").textContent = batch.book.title || "Book";
  document.title = `${batch.book.title || "Book"} · shoal`;
  const b = $("#book-status");
  b.className = `badge ${batch.status}`;
  b.textContent = batch.status.replace("_", " ");
  const c = batch.counts;
  $("#book-counts").textContent =
    `${c.succeeded} of ${c.total} chapters done` + (c.failed ? `, ${c.failed} failed` : "") +
    (c.running ? `, ${c.running} running` : "");
  $("#book-progress").value = Math.round(batch.progress.percent || 0);
  $("#book-error").hidden = !batch.error;
  if (batch.error) $("#book-error").textContent = batch.error;
  $("#cancel").hidden = FINISHED.has(batch.status);
  $("#rerender").hidden = !FINISHED.has(batch.status) || batch.status === "canceled";
  const list = $("#chapters");
  for (const item of batch.items) {
    let li = list.querySelector(`li[data-index="${item.index}"]`);
    if (!li) {
      li = chapterNode(item);
      list.append(li);
    }
    showChapter(li, item, batch);
  }
  showOutputs(batch);
  const moving = !FINISHED.has(batch.status) || BUILDING.has(batch.outputs.assembly.state);
  clearTimeout(timer);
  if (moving) timer = setTimeout(() => refresh().catch((e) => showError(e, { focus: false })), 2000);
}

async function refresh() {
  show(await call("GET", path));
}

start(async () => {
  onClick($("#cancel"), async () => {
    if (!confirm("Cancel this book? Chapters already done keep their audio.")) return;
    show(await call("POST", `${path}/cancel`));
    showOk("The book was canceled.");
  });
  onClick($("#rerender"), async () => {
    show(await call("POST", `${path}/rerender`, { json: {} }));
    showOk("The chapters your lexicons now change will be narrated again.");
  });
  await refresh();
});
