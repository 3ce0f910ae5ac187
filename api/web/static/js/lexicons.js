// The tenant's lexicons (GET /v1/lexicons).
import { app, call } from "./api.js";
import { $, fmtDate, h, start, td } from "./ui.js";

start(async () => {
  const page = await call("GET", "/v1/lexicons");
  $("#lexicons-table tbody").replaceChildren(
    ...page.data.map((l) =>
      h(
        "tr",
        {},
        td("Name", h("a", { href: `${app}/lexicons/${encodeURIComponent(l.id)}` }, l.name)),
        td("Language", l.language),
        td("Rules", String(l.rule_count)),
        td("Version", String(l.version)),
        td("Changed", fmtDate(l.updated_at)),
      ),
    ),
  );
  $("#empty").hidden = page.data.length > 0;
});
