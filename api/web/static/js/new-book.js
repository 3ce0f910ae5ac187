// A new book: the file is read by a dry run (POST /v1/books?dry_run=true) so its
// chapters and skipped matter are seen before anything is spent; then the chosen
// chapters, voice, lexicons and outputs go with the same file to POST /v1/books.
import { app, call, idempotencyKey } from "./api.js";
import { $, fmtMoney, h, onSubmit, showError, start, td } from "./ui.js";

let parsed = null;

function upload(extra = {}) {
  const form = new FormData();
  const file = $("#book-file").files[0];
  form.append("file", file, file.name);
  const title = $("#book-title").value.trim();
  const author = $("#book-author").value.trim();
  if (title) form.append("title", title);
  if (author) form.append("author", author);
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  return form;
}

function chosen() {
  return [...document.querySelectorAll("#chapters-table input[type=checkbox]:checked")].map(
    (box) => Number(box.value),
  );
}

function costOfChosen() {
  const picked = new Set(chosen());
  const chapters = parsed.chapters.filter((c) => picked.has(c.index + 1));
  const cost = chapters.reduce((sum, c) => sum + c.estimated_cost_usd, 0);
  const chars = chapters.reduce((sum, c) => sum + c.chars, 0);
  $("#book-estimate").textContent =
    `${chapters.length} of ${parsed.chapters.length} chapters, ${chars.toLocaleString()} characters: ` +
    `estimated cost ${fmtMoney(cost)}.`;
}

function showBook(book) {
  parsed = book;
  $("#preview-section").hidden = false;
  const by = book.author ? ` by ${book.author}` : "";
  $("#book-summary").textContent =
    `“${book.title}”${by}: ${book.chapters.length} chapters read from a ${book.kind} file` +
    `${book.language ? ` (language ${book.language})` : ""}.`;
  $("#chapters-table tbody").replaceChildren(
    ...book.chapters.map((c) => {
      const n = c.index + 1;
      const box = h("input", {
        type: "checkbox", value: n, checked: c.narrated, id: `chapter-${n}`,
        onchange: costOfChosen,
      });
      return h(
        "tr",
        {},
        td("Narrate", box, h("label", { for: `chapter-${n}`, class: "visually-hidden" }, `Narrate chapter ${n}`)),
        td("#", String(n)),
        td("Title", c.title),
        td("Characters", c.chars.toLocaleString()),
        td("Cost", fmtMoney(c.estimated_cost_usd)),
      );
    }),
  );
  const skipped = book.skipped_parts || [];
  $("#skipped-count").textContent = String(skipped.length);
  $("#skipped").replaceChildren(
    ...skipped.map((s) => h("li", {}, h("strong", {}, s.title || s.source), ` — ${s.reason}`)),
  );
  costOfChosen();
  $("#preview-title").focus(); // keyboard and screen-reader users land on the result
}

async function choices() {
  const [voices, lexicons] = await Promise.all([
    call("GET", "/v1/voices", { query: { limit: 200 } }),
    call("GET", "/v1/lexicons"),
  ]);
  for (const v of voices.data) $("#book-voice").append(h("option", { value: v.id }, v.title));
  const box = $("#lexicon-choice");
  $("#no-lexicons").hidden = lexicons.data.length > 0;
  for (const l of lexicons.data) {
    box.append(h("label", {}, h("input", { type: "checkbox", name: "lexicon", value: l.id }), `${l.name} (${l.rule_count} rules)`));
  }
}

function options() {
  const defaults = { prosody: { speed: Number($("#book-speed").value) || 1.0 } };
  if ($("#book-voice").value) defaults.voice = $("#book-voice").value;
  const lexicons = [...document.querySelectorAll("input[name=lexicon]:checked")].map((b) => b.value);
  if (lexicons.length) defaults.lexicons = lexicons;
  return {
    defaults,
    produce: {
      combined: $("#book-combined").value,
      chapter_format: $("#book-chapter-format").value,
      read_along: $("#book-read-along").checked,
    },
    chapters: chosen(),
  };
}

start(async () => {
  onSubmit($("#upload-form"), async () => {
    if (!$("#book-file").files.length) {
      showError("Choose a book file first.");
      $("#book-file").focus();
      return;
    }
    const answer = await call("POST", "/v1/books", { form: upload(), query: { dry_run: "true" } });
    showBook(answer.book);
  });
  onSubmit($("#start-form"), async () => {
    if (!parsed || !$("#book-file").files.length) {
      showError("Preview the book first.");
      return;
    }
    if (!chosen().length) {
      showError("Tick at least one chapter to narrate.");
      return;
    }
    const answer = await call("POST", "/v1/books", {
      form: upload({ options: JSON.stringify(options()) }),
      extraHeaders: { "Idempotency-Key": idempotencyKey() },
    });
    location.assign(`${app}/books/${encodeURIComponent(answer.batch.id)}`);
  });
  $("#book-file").addEventListener("change", () => {
    parsed = null;
    $("#preview-section").hidden = true;
  });
  await choices();
});
