/* Config: GET /api/v1/config/check, what `plant config check` says of the proxy's config
 * directory, each problem with file, line and key where the validator names them. */
"use strict";

(() => {
  const { el } = Plantd;

  async function check() {
    const verdict = document.getElementById("config-verdict");
    verdict.textContent = "checking…";
    try {
      const answer = await Plantd.api("GET", "/api/v1/config/check");
      const state = answer.ok ? "ok" : "failed";
      verdict.textContent = answer.ok ? "OK" : answer.problems.length + " problem" + (answer.problems.length === 1 ? "" : "s");
      verdict.dataset.verdict = state;
      verdict.className = "verdict v-" + state;
      document.getElementById("config-dir").textContent = answer.config_dir || "built-in defaults";
      document.getElementById("config-files").textContent = (answer.files || []).length ? "Checked: plantd.yaml, " + answer.files.join(", ") : "";
      document.getElementById("config-rows").replaceChildren(...answer.problems.map((p) =>
        el("tr", { "data-testid": "config-problem" },
          el("td", {}, p.file || ""), el("td", { class: "num" }, p.line ?? ""),
          el("td", {}, p.key ? el("code", {}, p.key) : ""), el("td", {}, p.message))));
      Plantd.message(document.getElementById("config-error"), "");
    } catch (err) {
      verdict.textContent = "unknown";
      verdict.dataset.verdict = "unknown";
      Plantd.message(document.getElementById("config-error"), Plantd.problemText(err), "error");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("config-recheck").addEventListener("click", check);
    check();
  });
})();
