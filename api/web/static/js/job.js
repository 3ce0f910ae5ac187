// One job: its state followed live over its event stream, the player and download
// once it succeeded, the error in words if it failed, its details, and cancel.
import { app, call, followJob } from "./api.js";
import {
  $, detailRows, errorInWords, fmtBytes, fmtDate, fmtMoney, fmtSeconds, h, onClick, showError,
  showOk, start,
} from "./ui.js";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const jobId = document.body.dataset.id;
let shownAudio = null;

function showProgress(p) {
  const pct = Math.round(p.percent || 0);
  $("#job-progress").value = pct;
  const parts = [`${pct}%`];
  if (p.phase && p.phase !== "synthesising" && pct < 100) parts.push(p.phase);
  if (p.segments_total) parts.push(`${p.segments_done} of ${p.segments_total} segments`);
  if (p.audio_seconds) parts.push(`${fmtSeconds(p.audio_seconds)} of audio`);
  $("#job-progress-text").textContent = parts.join(" · ");
}

function showCaptions(job) {
  // The job's captions (WebVTT, SRT, JSON), once it asked for timings and succeeded.
  const list = $("#captions");
  const files = (job.captions || []).filter((c) => c.download_url);
  list.replaceChildren(
    ...files.map((c) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = c.download_url;
      link.textContent = `Captions (${c.format.toUpperCase()}, ${fmtBytes(c.bytes)})`;
      item.append(link);
      return item;
    }),
  );
  list.hidden = files.length === 0;
}

function showAudio(job) {
  const output = job.output;
  if (!output || !output.download_url) return;
  $("#audio-section").hidden = false;
  if (shownAudio !== output.download_url) {
    $("#player").src = output.download_url;
    shownAudio = output.download_url;
  }
  const link = $("#download");
  link.href = output.download_url;
  link.textContent = `Download ${output.format} (${fmtBytes(output.bytes)})`;
  showCaptions(job);
}

function showDetails(job) {
  const r = job.request;
  const settings = [
    ["Status", job.status],
    ["Attempts", String(job.attempts)],
    ["Created", fmtDate(job.created_at)],
    ["Started", fmtDate(job.started_at)],
    ["Finished", fmtDate(job.finished_at)],
    ["Characters", r.characters.toLocaleString()],
    ["Estimated cost", fmtMoney(job.billing.estimated_cost_usd)],
    ["Voice", r.voice || r.reference_id || (r.references ? `${r.references} reference clip(s)` : "default")],
    ["Format", [r.format, r.sample_rate && `${r.sample_rate} Hz`, r.bitrate_kbps && `${r.bitrate_kbps} kbps`].filter(Boolean).join(", ")],
    ["Speed", r.prosody ? String(r.prosody.speed) : "1"],
    ["Lexicons", (r.lexicons || []).map((l) => `${l.id} v${l.version}`).join(", ")],
    ["Book", job.batch_id ? h("a", { href: `${app}/books/${encodeURIComponent(job.batch_id)}` }, job.batch_id) : ""],
    ["Audio length", job.output ? fmtSeconds(job.output.duration_s) : ""],
    ["Checksum (SHA-256)", job.output ? h("code", {}, job.output.sha256) : ""],
    ["Metadata", Object.keys(job.metadata || {}).length ? h("code", {}, JSON.stringify(job.metadata)) : ""],
  ];
  $("#details").replaceChildren(...detailRows(settings));
}

function show(job) {
  const badge = $("#job-status");
  badge.className = `badge ${job.status}`;
  badge.textContent = job.status;
  showProgress(job.progress);
  const err = $("#job-error");
  if (job.error) {
    err.replaceChildren(
      h("strong", {}, job.status === "failed" ? "Why it failed: " : "Last problem: "),
      errorInWords(job.error),
      " ",
      h("span", { class: "help" }, `(code ${job.error.code})`),
    );
    err.hidden = false;
  } else {
    err.hidden = true;
  }
  $("#cancel").hidden = TERMINAL.has(job.status);
  showAudio(job);
  showDetails(job);
}

async function follow() {
  // The stream's first event is the job as it is now; it ends once the job finished.
  await followJob(jobId, (event, data) => {
    if (event === "status") show(data);
    else if (event === "progress") showProgress(data.progress);
    else if (event === "attempt_failed") {
      showError(`An attempt failed and will be retried: ${errorInWords(data.error)}`, { focus: false });
    }
  });
  show(await call("GET", `/v1/jobs/${encodeURIComponent(jobId)}`)); // fresh download link
}

start(async () => {
  onClick($("#cancel"), async () => {
    if (!confirm("Cancel this job? Audio made so far is thrown away.")) return;
    show(await call("POST", `/v1/jobs/${encodeURIComponent(jobId)}/cancel`));
    showOk("The job was canceled.");
  });
  show(await call("GET", `/v1/jobs/${encodeURIComponent(jobId)}`));
  await follow();
});
