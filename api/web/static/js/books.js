// Recent books. The API has no list of batches, so the books are found through the
// tenant's latest jobs (GET /v1/jobs): each chapter's job names its batch.
import { app, call } from "./api.js";
import { $, badge, fmtDate, h, start, td } from "./ui.js";

const JOBS_LOOKED_AT = 200;
const MOST = 20;

function row(b) {
  return h(
    "tr",
    {},
    td("Book", h("a", { href: `${app}/books/${encodeURIComponent(b.id)}` }, b.book.title || b.id)),
    td("Status", badge(b.status)),
    td("Chapters", `${b.items_done} of ${b.items_total} done`),
    td("Progress", h("progress", { max: 100, value: Math.round(b.progress.percent || 0), "aria-label": `${b.book.title} progress` })),
    td("Created", fmtDate(b.created_at)),
  );
}

start(async () => {
  const page = await call("GET", "/v1/jobs", { query: { limit: JOBS_LOOKED_AT } });
  const ids = [...new Set(page.data.map((j) => j.batch_id).filter(Boolean))].slice(0, MOST);
  const batches = await Promise.all(
    ids.map((id) => call("GET", `/v1/batches/${encodeURIComponent(id)}`).catch(() => null)),
  );
  const found = batches.filter(Boolean);
  $("#books-table tbody").replaceChildren(...found.map(row));
  $("#empty").hidden = found.length > 0;
});
