/* Logs: the last 200 records (org.plantd.Logger query, newest first), filtered by minimum
 * level and source (a source and those below it, or a prefix ending in "."). Follow polls for
 * the records after the newest shown (after_id) every 2 s and puts them on top; at most
 * MAX_ROWS are kept on the page. */
"use strict";

(() => {
  const LOGGER = "org.plantd.Logger";
  const LIMIT = 200;
  const MAX_ROWS = 1000;
  const FOLLOW_MS = 2000;
  const { el } = Plantd;
  let newest = null;
  let followTimer = null;

  function filters() {
    const params = {};
    const level = document.getElementById("logs-level").value;
    const source = document.getElementById("logs-service").value.trim();
    if (level) params.level = level;
    if (source) params.source = source;
    return params;
  }

  function row(record) {
    const fields = Object.entries(record.fields || {}).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v)));
    return el("tr", { "data-testid": "log-row", "data-id": record.id, class: "level-" + record.level },
      el("td", { class: "time" }, Plantd.formatTime(record.time)),
      el("td", {}, el("span", { class: "level l-" + record.level }, record.level)),
      el("td", {}, record.source),
      el("td", { class: "message-cell" }, record.message, fields.length ? el("span", { class: "muted" }, " " + fields.join(" ")) : null));
  }

  const error = (text) => Plantd.message(document.getElementById("logs-error"), text, "error");

  async function load() {
    try {
      const answer = await Plantd.call(LOGGER, "query", { ...filters(), limit: LIMIT });
      document.getElementById("log-rows").replaceChildren(...answer.records.map(row));
      newest = answer.records.length ? answer.records[0].id : 0;
      error("");
    } catch (err) {
      error(Plantd.problemText(err));
    }
  }

  async function poll() {
    followTimer = null;
    if (!document.getElementById("logs-follow").checked) return;
    try {
      if (newest === null) await load();
      const answer = await Plantd.call(LOGGER, "query", { ...filters(), limit: LIMIT, after_id: newest });
      const body = document.getElementById("log-rows");
      for (const record of answer.records) { // oldest first: each goes on top
        body.prepend(row(record));
        newest = record.id;
      }
      while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
      error("");
    } catch (err) {
      error(Plantd.problemText(err));
    }
    if (document.getElementById("logs-follow").checked) followTimer = setTimeout(poll, FOLLOW_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("logs-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    document.getElementById("logs-level").addEventListener("change", load);
    document.getElementById("logs-follow").addEventListener("change", (event) => {
      if (event.target.checked && followTimer === null) poll();
    });
    load();
  });
})();
