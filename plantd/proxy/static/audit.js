/* Audit: org.plantd.Audit query (admin), newest first, 100 a page; "Older records" pages back
 * with before_id. Filters: principal, target prefix. */
"use strict";

(() => {
  const AUDIT = "org.plantd.Audit";
  const PAGE = 100;
  const { el } = Plantd;
  let oldest = null;

  async function load(older = false) {
    const params = { limit: PAGE };
    const principal = document.getElementById("audit-principal").value.trim();
    const target = document.getElementById("audit-target").value.trim();
    if (principal) params.principal = principal;
    if (target) params.target = target;
    if (older && oldest !== null) params.before_id = oldest;
    try {
      const answer = await Plantd.call(AUDIT, "query", params);
      const rows = answer.records.map((r) => el("tr", {
        "data-testid": "audit-row", "data-id": r.id, "data-result": r.result, class: "result-" + r.result,
      },
        el("td", { class: "time" }, Plantd.formatTime(r.time)),
        el("td", { "data-testid": "audit-principal-cell" }, r.principal),
        el("td", {}, r.action),
        el("td", { "data-testid": "audit-target-cell" }, r.target),
        el("td", { "data-testid": "audit-result-cell" }, r.result),
        el("td", {}, r.source ?? ""),
        el("td", { class: "detail" }, (r.detail == null ? "" : typeof r.detail === "string" ? r.detail : JSON.stringify(r.detail)) + (r.count > 1 ? " (×" + r.count + ")" : ""))));
      const body = document.getElementById("audit-rows");
      if (older) body.append(...rows); else body.replaceChildren(...rows);
      if (answer.records.length) oldest = answer.records[answer.records.length - 1].id;
      document.getElementById("audit-more").hidden = !answer.more;
      Plantd.message(document.getElementById("audit-error"), "");
    } catch (err) {
      Plantd.message(document.getElementById("audit-error"), Plantd.problemText(err), "error");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("audit-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    document.getElementById("audit-more").addEventListener("click", () => load(true));
    load();
  });
})();
