/* Points: the live table.
 *
 * Rows come from each module's `points` and `read` operations (module services are those named
 * org.plantd.module.M that offer `points`), then live from the SSE stream on `data.`. The stream
 * is opened first, so nothing published while the table loads is missed; a row keeps whichever
 * value is newer. Samples are gathered and drawn at most every 100 ms (a fast device cannot
 * make the page redraw per sample); ages tick every second.
 *
 * Write: every writable point has a Write button that opens a two-step dialog (value, then a
 * confirmation naming exactly what goes where) and POSTs {"point", "value"} to the module's
 * `write`. The service decides who may write; a person without `operate` sees the button
 * marked, and the 403 in words if they try.
 */
"use strict";

(() => {
  const PREFIX = "org.plantd.module.";
  const FLUSH_MS = 100;
  const { el } = Plantd;
  const rows = new Map(); // topic -> row
  const pending = new Map(); // topic -> newest sample not drawn yet
  let flushTimer = null;
  let mayOperate = false;

  function splitTopic(topic) {
    const rest = topic.startsWith("data.") ? topic.slice(5) : topic;
    const dot = rest.indexOf(".");
    return dot < 0 ? [rest, ""] : [rest.slice(0, dot), rest.slice(dot + 1)];
  }

  function moduleOption(module) {
    const select = document.getElementById("module-filter");
    if ([...select.options].some((o) => o.value === module)) return;
    const options = [...select.options].slice(1).map((o) => o.value).concat(module).sort();
    select.replaceChildren(select.options[0], ...options.map((m) => el("option", { value: m }, m)));
    select.value = select.dataset.current || "";
  }

  function ensureRow(topic) {
    let row = rows.get(topic);
    if (row) return row;
    const [module, point] = splitTopic(topic);
    row = { topic, module, point, value: undefined, quality: "", time: null, writable: false, info: {} };
    row.valueCell = el("td", { class: "num value", "data-testid": "point-value" }, "—");
    row.qualityCell = el("td", { "data-testid": "point-quality" });
    row.qualityBadge = el("span", { class: "quality" });
    row.qualityCell.append(row.qualityBadge);
    row.ageCell = el("td", { class: "num", "data-testid": "point-age" }, "");
    row.actions = el("td", { class: "actions-cell" },
      el("a", { href: "/trend?topic=" + encodeURIComponent(topic), "data-testid": "trend-link" }, "Trend"));
    row.tr = el("tr", { "data-testid": "point-row", "data-topic": topic, "data-module": module },
      el("td", { "data-testid": "point-module" }, module),
      el("td", { "data-testid": "point-name", "data-module": module }, point),
      row.valueCell, row.qualityCell, row.ageCell, row.actions);
    rows.set(topic, row);
    insertSorted(row);
    moduleOption(module);
    applyFilter(row);
    document.getElementById("points-empty").hidden = true;
    return row;
  }

  function insertSorted(row) { // by topic; a binary search, as a plant may have thousands
    const body = document.getElementById("point-rows");
    const children = body.children;
    let low = 0;
    let high = children.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (children[middle].dataset.topic < row.topic) low = middle + 1;
      else high = middle;
    }
    body.insertBefore(row.tr, children[low] || null);
  }

  function setWritable(row) {
    if (!row.writable || row.actions.querySelector("button")) return;
    const button = el("button", {
      type: "button", class: mayOperate ? "small" : "small denied", "data-testid": "write-button",
      "data-permitted": mayOperate ? "true" : "false",
      title: mayOperate ? "Write a value to " + row.point : "Your access does not include operate: the write will be refused",
      onclick: () => openWrite(row),
    }, "Write");
    row.actions.append(button);
  }

  function show(row, value, quality, time) {
    if (row.time !== null && typeof time === "number" && time < row.time) return false; // older
    row.value = value;
    row.quality = quality || "";
    row.time = typeof time === "number" ? time : row.time;
    row.valueCell.textContent = Plantd.formatValue(value);
    row.valueCell.dataset.value = JSON.stringify(value === undefined ? null : value);
    row.qualityBadge.textContent = row.quality;
    row.qualityBadge.className = "quality q-" + row.quality;
    row.qualityCell.dataset.quality = row.quality;
    age(row, Date.now() / 1000);
    return true;
  }

  function age(row, now) {
    row.ageCell.textContent = row.time === null ? "" : Plantd.formatAge(now - row.time);
  }

  function flush() {
    flushTimer = null;
    const changed = [];
    for (const [topic, sample] of pending) {
      const row = ensureRow(topic);
      if (show(row, sample.value, sample.quality, sample.time)) changed.push(row.tr);
    }
    pending.clear();
    // Restart the highlight of the rows that changed: one reflow for all of them, not one each.
    changed.forEach((tr) => tr.classList.remove("changed"));
    void document.body.offsetWidth;
    changed.forEach((tr) => tr.classList.add("changed"));
  }

  function onSamples(event) {
    for (const sample of event.samples || []) {
      let topic = sample.topic || event.topic;
      if (sample.point && !topic.endsWith("." + sample.point)) topic = topic + "." + sample.point;
      pending.set(topic, sample);
    }
    if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  function applyFilter(row) {
    const module = document.getElementById("module-filter").value;
    const text = document.getElementById("point-search").value.trim().toLowerCase();
    row.tr.hidden = (module && row.module !== module) || (text && !row.point.toLowerCase().includes(text));
  }

  function hasOperation(service, name) {
    return (service.operations || []).some((o) => (o.name || o) === name);
  }

  async function loadModule(module) {
    const service = PREFIX + module;
    const [points, values] = await Promise.all([Plantd.call(service, "points"), Plantd.call(service, "read")]);
    for (const point of points) {
      const row = ensureRow("data." + module + "." + point.name);
      row.writable = Boolean(point.writable);
      row.info = point;
      if (point.description) row.tr.title = point.description;
      setWritable(row);
      const last = values[point.name];
      if (last) show(row, last.value, last.quality, last.timestamp);
    }
  }

  async function load() {
    const error = document.getElementById("points-error");
    try {
      const { services } = await Plantd.api("GET", "/api/v1/services");
      const modules = services.filter((s) => s.name.startsWith(PREFIX) && hasOperation(s, "points"))
        .map((s) => s.name.slice(PREFIX.length));
      modules.forEach(moduleOption);
      const results = await Promise.allSettled(modules.map(loadModule));
      const failed = results.map((r, i) => r.status === "rejected" ? modules[i] + ": " + Plantd.problemText(r.reason) : null)
        .filter(Boolean);
      Plantd.message(error, failed.join("\n"), "error");
    } catch (err) {
      Plantd.message(error, Plantd.problemText(err), "error");
    }
    document.getElementById("points-empty").hidden = rows.size > 0;
  }

  // --- the write dialog ---------------------------------------------------------------------

  const dialog = () => document.getElementById("write-dialog");
  let writing = null; // {row, value}

  function step(name) {
    document.getElementById("write-step-value").hidden = name !== "value";
    document.getElementById("write-step-confirm").hidden = name !== "confirm";
    document.getElementById("write-done").hidden = name !== "done";
  }

  function openWrite(row) {
    writing = { row, value: undefined };
    const info = row.info || {};
    const limits = [info.minimum != null ? "minimum " + info.minimum : "", info.maximum != null ? "maximum " + info.maximum : ""]
      .filter(Boolean).join(", ");
    document.getElementById("write-where").textContent = "Point “" + row.point + "” of module “" + row.module +
      "” — now " + Plantd.formatValue(row.value) + (limits ? " (" + limits + ")" : "");
    Plantd.message(document.getElementById("write-permission"), mayOperate ? "" :
      "Your access (" + ([...Plantd.levels()].join(", ") || "none") + ") does not include operate: the write will be refused.", "warning");
    const input = document.getElementById("write-value");
    input.value = row.value === undefined || row.value === null ? "" : String(row.value);
    Plantd.message(document.getElementById("write-result"), "");
    step("value");
    dialog().showModal();
    input.focus();
    input.select();
  }

  function parseValue(text) {
    const trimmed = text.trim();
    if (trimmed === "") return undefined;
    try {
      const parsed = JSON.parse(trimmed);
      if (typeof parsed === "number" || typeof parsed === "boolean") return parsed;
    } catch (err) { /* not JSON: text */ }
    return text;
  }

  function review() {
    const value = parseValue(document.getElementById("write-value").value);
    const result = document.getElementById("write-result");
    if (value === undefined) {
      Plantd.message(result, "Enter a value first.", "error");
      return;
    }
    Plantd.message(result, "");
    writing.value = value;
    const { row } = writing;
    const kind = typeof value === "string" ? "text" : typeof value;
    document.getElementById("write-summary").textContent = "Write " + JSON.stringify(value) + " (" + kind +
      ") to point “" + row.point + "” of module “" + row.module + "” (" + PREFIX + row.module + " write)?";
    step("confirm");
    document.getElementById("write-confirm").focus();
  }

  async function confirmWrite() {
    const { row, value } = writing;
    const button = document.getElementById("write-confirm");
    const result = document.getElementById("write-result");
    button.disabled = true;
    try {
      const answer = await Plantd.call(PREFIX + row.module, "write", { point: row.point, value });
      result.dataset.status = "ok";
      delete result.dataset.http;
      Plantd.message(result, "Written: " + row.module + "." + answer.point + " = " + Plantd.formatValue(answer.value), "ok");
    } catch (err) {
      result.dataset.status = "error";
      result.dataset.http = String(err.status ?? "");
      Plantd.message(result, Plantd.problemText(err), "error");
    } finally {
      button.disabled = false;
      step("done");
      document.getElementById("write-close").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    mayOperate = Plantd.levels().has("operate");
    const select = document.getElementById("module-filter");
    select.dataset.current = select.dataset.initial || "";
    select.addEventListener("change", () => {
      select.dataset.current = select.value;
      rows.forEach(applyFilter);
    });
    document.getElementById("point-search").addEventListener("input", () => rows.forEach(applyFilter));
    document.getElementById("write-next").addEventListener("click", review);
    document.getElementById("write-value").addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); review(); }
    });
    document.getElementById("write-back").addEventListener("click", () => step("value"));
    document.getElementById("write-confirm").addEventListener("click", confirmWrite);
    document.getElementById("write-cancel").addEventListener("click", () => dialog().close());
    document.getElementById("write-close").addEventListener("click", () => dialog().close());
    Plantd.stream(["data."], { samples: onSamples }, document.getElementById("stream-status"));
    load();
    setInterval(() => {
      const now = Date.now() / 1000;
      rows.forEach((row) => { if (!row.tr.hidden) age(row, now); });
    }, 1000);
  });
})();
