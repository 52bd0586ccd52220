/* HIL results: the JUnit files `plant hil run --junit` left in proxy.hil_results, newest
 * first; a click shows a run's suites and every case that did not pass. A file that is not
 * JUnit XML is listed with why. */
"use strict";

(() => {
  const { el } = Plantd;

  function verdict(result) {
    const state = result.error ? "unknown" : result.ok ? "ok" : "failed";
    const text = result.error ? "unreadable" : result.ok ? "passed" : "failed";
    return el("span", { class: "verdict v-" + state, "data-verdict": state }, text);
  }

  async function list() {
    try {
      const answer = await Plantd.api("GET", "/api/v1/hil/results");
      document.getElementById("hil-directory").textContent = "From " + answer.directory +
        (answer.results.length ? "" : ": no results yet (plant hil run --junit " + answer.directory + "/NAME.xml)");
      document.getElementById("hil-rows").replaceChildren(...answer.results.map((r) =>
        el("tr", { "data-testid": "hil-row", "data-name": r.name, class: "clickable", tabindex: "0",
          onclick: () => show(r.name), onkeydown: (e) => { if (e.key === "Enter") show(r.name); } },
          el("td", {}, r.name, r.error ? el("div", { class: "muted", "data-testid": "hil-row-error" }, r.error) : null),
          el("td", {}, Plantd.formatTime(r.modified)),
          el("td", { title: r.error || "" }, verdict(r)),
          el("td", { class: "num" }, r.tests ?? ""), el("td", { class: "num" }, r.failures ?? ""),
          el("td", { class: "num" }, r.errors ?? ""), el("td", { class: "num" }, r.skipped ?? ""))));
    } catch (err) {
      Plantd.message(document.getElementById("hil-error"), Plantd.problemText(err), "error");
    }
  }

  async function show(name) {
    const detail = document.getElementById("hil-detail");
    try {
      const r = await Plantd.api("GET", "/api/v1/hil/results/" + encodeURIComponent(name));
      const parts = [el("h2", {}, r.name, " ", verdict(r))];
      if (r.error) parts.push(el("p", { class: "message error" }, r.error));
      for (const suite of r.suites || []) {
        parts.push(el("h3", {}, suite.name, el("span", { class: "muted" }, " " + suite.tests + " tests, " +
          suite.failures + " failed, " + suite.errors + " errors, " + (suite.time ?? "?") + " s")));
        parts.push(el("ul", { class: "cases" }, suite.cases.map((c) =>
          el("li", { "data-testid": "hil-case", "data-status": c.status, class: "case-" + c.status },
            el("span", { class: "verdict v-" + (c.status === "passed" ? "ok" : c.status === "skipped" ? "degraded" : "failed") }, c.status),
            " " + c.name,
            c.message ? el("pre", { class: "failure" }, c.text || c.message) : null))));
        if (suite.system_out) parts.push(el("details", {}, el("summary", {}, "Output"), el("pre", {}, suite.system_out)));
        if (suite.system_err) parts.push(el("details", {}, el("summary", {}, "Logs"), el("pre", {}, suite.system_err)));
      }
      detail.replaceChildren(...parts);
      detail.hidden = false;
      detail.scrollIntoView({ block: "start" });
    } catch (err) {
      Plantd.message(document.getElementById("hil-error"), Plantd.problemText(err), "error");
    }
  }

  document.addEventListener("DOMContentLoaded", list);
})();
