// The job list: newest first, a status filter, pages by cursor, and live progress
// for the jobs still running (their event streams; a browser allows only a few
// connections to one server, so at most LIVE streams, the rest refreshed by polling).
import { app, call, followJob } from "./api.js";
import { $, badge, fmtDate, fmtSeconds, h, showError, start, td } from "./ui.js";

const PAGE = 20;
const LIVE = 3;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

let cursors = [null]; // cursors[i]: the cursor of page i (null: the first page)
let page = 0;
let next = null;
let streams = new AbortController();
let poll = null;

function status() {
  return document.querySelector("input[name=status]:checked").value;
}

function progressCell(job) {
  const pct = Math.round(job.progress.percent || 0);
  return h("progress", { max: 100, value: pct, "aria-label": `Job ${job.id} progress`, title: `${pct}%` });
}

function row(job) {
  const output = job.output || {};
  const seconds = output.duration_s ?? job.progress.audio_seconds ?? 0;
  return h(
    "tr",
    { "data-job": job.id },
    td("Job", h("a", { href: `${app}/jobs/${encodeURIComponent(job.id)}` }, h("code", {}, job.id))),
    td("Status", badge(job.status)),
    td("Progress", progressCell(job)),
    td("Format", job.request.format),
    td("Audio", fmtSeconds(seconds)),
    td("Created", fmtDate(job.created_at)),
  );
}

function update(job) {
  const old = document.querySelector(`tr[data-job="${CSS.escape(job.id)}"]`);
  if (old) old.replaceWith(row(job));
}

function progress(jobId, p) {
  const bar = document.querySelector(`tr[data-job="${CSS.escape(jobId)}"] progress`);
  if (bar) bar.value = Math.round(p.percent || 0);
}

function follow(jobs) {
  streams.abort();
  streams = new AbortController();
  clearTimeout(poll);
  const active = jobs.filter((j) => !TERMINAL.has(j.status));
  for (const job of active.slice(0, LIVE)) {
    followJob(
      job.id,
      (event, data) => {
        if (event === "status") update(data);
        else if (event === "progress") progress(data.job_id, data.progress);
      },
      streams.signal,
    ).catch(() => {}); // a lost stream is covered by the next refresh
  }
  if (active.length > LIVE) poll = setTimeout(() => load().catch(() => {}), 5000);
}

async function load() {
  const answer = await call("GET", "/v1/jobs", {
    query: { status: status(), limit: PAGE, cursor: cursors[page] },
  });
  next = answer.next_cursor;
  const body = $("#jobs-table tbody");
  body.replaceChildren(...answer.data.map(row));
  $("#empty").hidden = answer.data.length > 0;
  $("#older").disabled = !next;
  $("#newer").disabled = page === 0;
  follow(answer.data);
}

function reload() {
  load().catch((e) => showError(e));
}

start(async () => {
  for (const radio of document.querySelectorAll("input[name=status]")) {
    radio.addEventListener("change", () => {
      cursors = [null];
      page = 0;
      reload();
    });
  }
  $("#older").addEventListener("click", () => {
    if (!next) return;
    cursors[page + 1] = next;
    page += 1;
    reload();
  });
  $("#newer").addEventListener("click", () => {
    if (page === 0) return;
    page -= 1;
    reload();
  });
  await load();
});
