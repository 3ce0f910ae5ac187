// One lexicon's rules, edited in a table and saved as its next version
// (PUT /v1/lexicons/{id}); a new one is created with POST /v1/lexicons.
// Books narrated with it are re-rendered from their own page.
import { app, call } from "./api.js";
import { $, h, onClick, onSubmit, showError, showOk, start } from "./ui.js";

let lexiconId = document.body.dataset.id;
let kept = []; // rules with only a phoneme: not editable here, saved as they were

function ruleRow(rule = { grapheme: "", alias: "", case_sensitive: false }) {
  const n = $("#rules-table tbody").children.length + 1;
  const remove = h("button", { type: "button", class: "small danger", "aria-label": `Remove rule ${n}` }, "Remove");
  const row = h(
    "tr",
    {},
    h("td", { "data-label": "Word or phrase" },
      h("input", { class: "grapheme", value: rule.grapheme, "aria-label": `Rule ${n}: word or phrase`, maxlength: 200 })),
    h("td", { "data-label": "Say it as" },
      h("input", { class: "alias", value: rule.alias || "", "aria-label": `Rule ${n}: say it as`, maxlength: 500 })),
    h("td", { "data-label": "Match case" },
      h("input", { type: "checkbox", class: "case", checked: rule.case_sensitive, "aria-label": `Rule ${n}: match case` })),
    h("td", {}, remove),
  );
  remove.addEventListener("click", () => {
    row.remove();
    $("#add-rule").focus();
  });
  return row;
}

function rules() {
  const out = [];
  for (const row of $("#rules-table tbody").children) {
    const grapheme = row.querySelector(".grapheme").value.trim();
    const alias = row.querySelector(".alias").value.trim();
    if (!grapheme && !alias) continue;
    out.push({ grapheme, alias, case_sensitive: row.querySelector(".case").checked });
  }
  return out.concat(kept);
}

function show(lexicon) {
  $("#lexicon-heading").textContent = `Lexicon “${lexicon.name}”`;
  document.title = `${lexicon.name} · shoal`;
  $("#lexicon-name").value = lexicon.name;
  $("#lexicon-language").value = lexicon.language;
  kept = lexicon.rules.filter((r) => !r.alias);
  $("#rules-table tbody").replaceChildren();
  for (const r of lexicon.rules.filter((x) => x.alias)) $("#rules-table tbody").append(ruleRow(r));
  $("#lexicon-version").textContent =
    `Version ${lexicon.version}. Saving makes version ${lexicon.version + 1}; ` +
    "to hear the change in a book already narrated, open the book and choose " +
    "“Render again what the lexicons change”." +
    (kept.length ? ` ${kept.length} rule(s) with phonemes only are kept as they are.` : "");
  $("#delete").hidden = false;
}

start(async () => {
  $("#add-rule").addEventListener("click", () => {
    const row = ruleRow();
    $("#rules-table tbody").append(row);
    row.querySelector("input").focus();
  });
  onSubmit($("#lexicon-form"), async () => {
    const name = $("#lexicon-name").value.trim();
    if (!name) {
      showError("Give the lexicon a name.");
      $("#lexicon-name").focus();
      return;
    }
    const body = { name, language: $("#lexicon-language").value.trim() || "en", rules: rules() };
    if (lexiconId) {
      show(await call("PUT", `/v1/lexicons/${encodeURIComponent(lexiconId)}`, { json: body }));
      showOk("Saved.");
    } else {
      const made = await call("POST", "/v1/lexicons", { json: body });
      location.assign(`${app}/lexicons/${encodeURIComponent(made.id)}?created=1`);
    }
  });
  onClick($("#delete"), async () => {
    if (!confirm("Delete this lexicon? Jobs already made keep their audio.")) return;
    await call("DELETE", `/v1/lexicons/${encodeURIComponent(lexiconId)}`);
    location.assign(`${app}/lexicons`);
  });
  if (lexiconId) {
    show(await call("GET", `/v1/lexicons/${encodeURIComponent(lexiconId)}`));
    if (new URLSearchParams(location.search).get("created")) showOk("Created.");
  } else {
    $("#rules-table tbody").append(ruleRow());
  }
});
