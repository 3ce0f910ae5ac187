// New narration: text, voice, format and speed; the cost estimate (POST /v1/estimate)
// is shown as the text is typed, and again on submit, before POST /v1/jobs.
import { app, call, idempotencyKey } from "./api.js";
import { $, fmtMoney, fmtSeconds, h, onSubmit, showError, start } from "./ui.js";

let timer = null;
let asked = 0;

function speed() {
  const value = Number($("#speed").value);
  return Number.isFinite(value) && value > 0 ? value : 1.0;
}

async function estimate() {
  const text = $("#text").value;
  const out = $("#estimate");
  if (!text.trim()) {
    out.textContent = "Type a text to see what it costs.";
    return null;
  }
  const mine = ++asked;
  const e = await call("POST", "/v1/estimate", { json: { text, speed: speed() } });
  if (mine !== asked) return e; // a newer answer is on its way
  const words = `About ${fmtSeconds(e.estimated_audio_seconds)} of audio, ` +
    `${e.characters.toLocaleString()} characters (${e.utf8_bytes.toLocaleString()} bytes): ` +
    `estimated cost ${fmtMoney(e.estimated_cost_usd)}.`;
  out.textContent = e.within_limit
    ? words
    : `${words} That is over this server's limit of ${e.max_text_bytes.toLocaleString()} bytes ` +
      "for one job: shorten it, or upload it as a book.";
  return e;
}

function later() {
  clearTimeout(timer);
  timer = setTimeout(() => estimate().catch((e) => showError(e, { focus: false })), 400);
}

async function voices() {
  const select = $("#voice");
  const page = await call("GET", "/v1/voices", { query: { limit: 200 } });
  for (const v of page.data) {
    select.append(h("option", { value: v.id }, `${v.title} (${v.state})`));
  }
}

start(async () => {
  $("#text").addEventListener("input", later);
  $("#speed").addEventListener("input", later);
  onSubmit($("#job-form"), async () => {
    const text = $("#text").value;
    if (!text.trim()) {
      showError("Type the text to narrate first.");
      $("#text").focus();
      return;
    }
    const e = await estimate();
    if (e && !e.within_limit) {
      showError($("#estimate").textContent);
      return;
    }
    const body = { text, format: $("#format").value, prosody: { speed: speed() } };
    if ($("#voice").value) body.voice = $("#voice").value;
    if ($("#timestamps").value) body.timestamps = $("#timestamps").value;
    const job = await call("POST", "/v1/jobs", {
      json: body,
      extraHeaders: { "Idempotency-Key": idempotencyKey() },
    });
    location.assign(`${app}/jobs/${encodeURIComponent(job.id)}`);
  });
  await voices();
});
