/* Dashboard: health (GET /api/v1/health: 200 when ok, 503 with the same body otherwise) and
 * services with their workers (GET /api/v1/services), refreshed every 5 s. */
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const SEVERITY = { failed: 0, degraded: 1, ok: 2 };
  const { el } = Plantd;

  function verdictBadge(verdict, testid) {
    return el("span", { class: "verdict v-" + verdict, "data-verdict": verdict, "data-testid": testid }, verdict);
  }

  function kindOf(name) {
    if (name.startsWith("module.") || name === "modules") return "modules";
    if (name.startsWith("sink.")) return "sinks";
    if (name === "disk") return "disk";
    return "services";
  }

  function showHealth(health) {
    const verdict = document.getElementById("verdict");
    verdict.textContent = health.verdict;
    verdict.dataset.verdict = health.verdict;
    verdict.className = "verdict v-" + health.verdict;
    const entries = (health.services || []).slice().sort((a, b) =>
      (SEVERITY[a.verdict] ?? 3) - (SEVERITY[b.verdict] ?? 3) || a.name.localeCompare(b.name));
    const counts = {};
    for (const entry of entries) {
      const kind = kindOf(entry.name);
      counts[kind] = counts[kind] || { ok: 0, degraded: 0, failed: 0 };
      counts[kind][entry.verdict] = (counts[kind][entry.verdict] || 0) + 1;
    }
    const summary = Object.entries(counts).map(([kind, c]) =>
      kind + ": " + ["ok", "degraded", "failed"].filter((v) => c[v]).map((v) => c[v] + " " + v).join(", "));
    document.getElementById("health-summary").textContent = summary.join(" · ");
    document.getElementById("health-rows").replaceChildren(...entries.map((entry) =>
      el("tr", { "data-testid": "health-row", "data-name": entry.name, "data-verdict": entry.verdict },
        el("td", {}, entry.name),
        el("td", {}, verdictBadge(entry.verdict, "health-row-verdict")),
        el("td", { class: "reasons" }, (entry.reasons || []).join("; ") || "—"))));
  }

  function showServices(services) {
    document.getElementById("service-rows").replaceChildren(...services.map((service) => {
      const workers = service.workers || {};
      const operations = service.operations || [];
      return el("tr", { "data-testid": "service-row", "data-name": service.name },
        el("td", {}, service.name),
        el("td", { class: "num" }, workers.idle ?? "—"),
        el("td", { class: "num" }, workers.busy ?? "—"),
        el("td", { class: workers.queued ? "num attention" : "num" }, workers.queued ?? "—"),
        el("td", { class: "num", title: operations.map((o) => o.name || o).join(", ") }, operations.length));
    }));
  }

  async function refresh() {
    const errors = [];
    const [health, services] = await Promise.allSettled([
      Plantd.request("GET", "/api/v1/health"),
      Plantd.api("GET", "/api/v1/services"),
    ]);
    if (health.status === "fulfilled" && health.value.data && health.value.data.verdict) {
      showHealth(health.value.data);
    } else {
      const answer = health.value;
      const detail = health.status === "rejected" ? Plantd.problemText(health.reason) :
        (answer.data && answer.data.detail) || "HTTP " + answer.status;
      errors.push("Health: " + detail);
      const verdict = document.getElementById("verdict");
      verdict.textContent = "unknown";
      verdict.dataset.verdict = "unknown";
      verdict.className = "verdict v-unknown";
    }
    if (services.status === "fulfilled") showServices(services.value.services || []);
    else errors.push("Services: " + Plantd.problemText(services.reason));
    Plantd.message(document.getElementById("dashboard-error"), errors.join("\n"), "error");
    document.getElementById("updated").textContent = "updated " + Plantd.formatTime(Date.now() / 1000, false);
  }

  function loop() {
    refresh().finally(() => setTimeout(loop, REFRESH_MS));
  }

  document.addEventListener("DOMContentLoaded", loop);
})();
