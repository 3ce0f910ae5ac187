// Operations: queue depths, provider slots and jobs by status from /metrics (the
// Prometheus text the server already publishes), and the tenant's recent failures
// with their codes (GET /v1/jobs?status=failed).
import { app, call, text } from "./api.js";
import { $, detailRows, errorInWords, fmtDate, h, showError, start, td } from "./ui.js";

/** Samples of the Prometheus text format: [{name, labels, value}]. */
export function parseMetrics(body) {
  const out = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/;
  for (const raw of body.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const queueWords = {
  jobs: "Narrations waiting",
  bulk: "Book chapters waiting",
  callbacks: "Callbacks waiting",
};

async function load() {
  const [metrics, failed] = await Promise.all([
    text("/metrics").then(parseMetrics),
    call("GET", "/v1/jobs", { query: { status: "failed", limit: 20 } }),
  ]);
  const pick = (name) => metrics.filter((s) => s.name === name);
  $("#queues").replaceChildren(
    ...detailRows(pick("shoal_queue_depth").map((s) => [queueWords[s.labels.queue] || s.labels.queue, String(s.value)])),
  );
  const used = pick("shoal_provider_sessions_in_use")[0]?.value ?? 0;
  const slots = pick("shoal_provider_slots")[0]?.value ?? 0;
  $("#slots").textContent = `${used} of ${slots} in use`;
  $("#slots-meter").max = Math.max(slots, 1);
  $("#slots-meter").value = used;
  $("#counts").replaceChildren(
    ...detailRows(pick("shoal_jobs").map((s) => [s.labels.status, String(s.value)])),
  );
  $("#failures-table tbody").replaceChildren(
    ...failed.data.map((j) =>
      h(
        "tr",
        {},
        td("Job", h("a", { href: `${app}/jobs/${encodeURIComponent(j.id)}` }, h("code", {}, j.id))),
        td("Code", h("code", {}, j.error ? j.error.code : "")),
        td("What happened", errorInWords(j.error)),
        td("Finished", fmtDate(j.finished_at)),
      ),
    ),
  );
  $("#no-failures").hidden = failed.data.length > 0;
}

start(async () => {
  $("#refresh").addEventListener("click", () => load().catch((e) => showError(e)));
  await load();
  setInterval(() => load().catch((e) => showError(e, { focus: false })), 5000);
});
