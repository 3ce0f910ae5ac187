// Voices: the list, adding one from recordings (POST /v1/voices), and hearing it:
// a preview is a short job in that voice (POST /v1/voices/{id}/preview), played when done;
// the first recording can be played at once.
import { call } from "./api.js";
import { $, badge, errorInWords, fmtDate, fmtSeconds, h, onClick, onSubmit, showError, showOk, start } from "./ui.js";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function previewInto(voice, holder) {
  const job = await call("POST", `/v1/voices/${encodeURIComponent(voice.id)}/preview`, { json: {} });
  holder.replaceChildren(h("p", { class: "help" }, "Making a preview…"));
  for (let i = 0; i < 120; i += 1) {
    const now = await call("GET", `/v1/jobs/${encodeURIComponent(job.id)}`);
    if (now.status === "succeeded" && now.output) {
      holder.replaceChildren(h("audio", { controls: true, autoplay: true, src: now.output.download_url, "aria-label": `Preview of ${voice.title}` }));
      return;
    }
    if (now.status === "failed" || now.status === "canceled") {
      holder.replaceChildren(h("div", { class: "error-box" }, `The preview failed. ${errorInWords(now.error)}`));
      return;
    }
    await sleep(1000);
  }
  holder.replaceChildren(h("p", { class: "help" }, "The preview is taking long; it will appear in the job list."));
}

async function sampleInto(voice, holder) {
  const full = await call("GET", `/v1/voices/${encodeURIComponent(voice.id)}`);
  const sample = full.samples.find((s) => s.download_url);
  if (!sample) {
    holder.replaceChildren(h("p", { class: "help" }, "The recording cannot be fetched just now."));
    return;
  }
  holder.replaceChildren(h("audio", { controls: true, autoplay: true, src: sample.download_url, "aria-label": `Recording: ${sample.filename}` }));
}

function card(voice) {
  const holder = h("div", { class: "player" });
  const preview = h("button", { type: "button", class: "small" }, "Hear a preview");
  const sample = h("button", { type: "button", class: "small" }, "Play the recording");
  const remove = h("button", { type: "button", class: "small danger" }, "Delete");
  onClick(preview, () => previewInto(voice, holder));
  onClick(sample, () => sampleInto(voice, holder));
  onClick(remove, async () => {
    if (!confirm(`Delete the voice “${voice.title}”?`)) return;
    await call("DELETE", `/v1/voices/${encodeURIComponent(voice.id)}`);
    showOk(`Deleted “${voice.title}”.`);
    await load();
  });
  return h(
    "li",
    {},
    h("div", { class: "head" }, h("strong", {}, voice.title), " ", badge(voice.state)),
    h("p", { class: "help" },
      `${voice.sample_count} recording(s), ${fmtSeconds(voice.seconds)} · id `, h("code", {}, voice.id),
      ` · added ${fmtDate(voice.created_at)}`),
    voice.state_message ? h("div", { class: "error-box" }, voice.state_message) : null,
    h("p", { class: "actions" }, preview, sample, remove),
    holder,
  );
}

async function load() {
  const page = await call("GET", "/v1/voices", { query: { limit: 200 } });
  $("#voices").replaceChildren(...page.data.map(card));
  $("#empty").hidden = page.data.length > 0;
}

start(async () => {
  onSubmit($("#voice-form"), async () => {
    const files = $("#voice-files").files;
    if (!$("#voice-title").value.trim()) {
      showError("Give the voice a name.");
      $("#voice-title").focus();
      return;
    }
    if (!files.length) {
      showError("Choose at least one recording.");
      return;
    }
    const form = new FormData();
    form.append("title", $("#voice-title").value.trim());
    for (const f of files) form.append("files", f, f.name);
    const text = $("#voice-text").value.trim();
    if (text) for (let i = 0; i < files.length; i += 1) form.append("texts", text);
    if ($("#voice-language").value.trim()) form.append("language", $("#voice-language").value.trim());
    const voice = await call("POST", "/v1/voices", { form });
    showOk(`Added the voice “${voice.title}”.`);
    $("#voice-form").reset();
    await load();
  });
  await load();
});
