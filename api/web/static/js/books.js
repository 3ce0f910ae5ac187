// The tenant's books, newest first (GET /v1/batches?kind=book), a page at a time:
// "More books" appends the next page. `?per_page=N` in the address sets the page size.
import { app, call } from "./api.js";
import { $, badge, fmtDate, h, onClick, start, td } from "./ui.js";

const PER_PAGE = 20;

let next = null; // the cursor of the next page; null when there is none

function perPage() {
  const asked = Number.parseInt(new URLSearchParams(location.search).get("per_page") || "", 10);
  return Number.isInteger(asked) && asked >= 1 && asked <= 200 ? asked : PER_PAGE;
}

function row(b) {
  return h(
    "tr",
    { "data-batch": b.id },
    td("Book", h("a", { href: `${app}/books/${encodeURIComponent(b.id)}` }, b.title || b.id)),
    td("Status", badge(b.status)),
    td("Chapters", `${b.items_done} of ${b.items_total} done`),
    td(
      "Progress",
      h("progress", { max: b.items_total || 1, value: b.items_done, "aria-label": `${b.title} chapters done` }),
    ),
    td("Created", fmtDate(b.created_at)),
  );
}

async function more() {
  const answer = await call("GET", "/v1/batches", {
    query: { kind: "book", limit: perPage(), cursor: next },
  });
  next = answer.next_cursor;
  $("#books-table tbody").append(...answer.data.map(row));
  $("#empty").hidden = $("#books-table tbody").rows.length > 0;
  $("#more").hidden = !next;
}

start(async () => {
  onClick($("#more"), more);
  await more();
});
