/* Alarms: the current alarms (org.plantd.Alarms list), live from the SSE stream on
 * `event.alarm.`, and their history (org.plantd.Alarms history).
 *
 * Live: the stream is opened first and then the list is asked for, so no transition is missed
 * while the table loads; each alarm's row keeps the record with the highest `seq` (the alarm's
 * own transition counter), so a list answer older than a streamed event never wins. Records
 * are gathered and drawn at most every 100 ms. This page's stream also feeds the header's
 * alarm badge (alarm-badge.js does not open a stream of its own here).
 *
 * Presentation (ISA-101/18.2-ish): priority as a shape and a word (never colour alone); an
 * alarm that waits for an acknowledgement is bold with a "!" mark; shelved and suppressed
 * alarms say so in words. Sorted by priority, then newest first.
 *
 * Actions: Acknowledge (one click: the commonest action must be quick), Acknowledge all shown
 * (a confirmation listing them), Shelve (a dialog: duration, reason, then confirm) and
 * Unshelve (a confirmation). The broker decides who may: a person whose levels do not include
 * what an action needs sees the button marked (data-permitted="false"), and a refusal in words.
 */
"use strict";

(() => {
  const ALARMS = "org.plantd.Alarms";
  const FLUSH_MS = 100;
  const HISTORY_LIMIT = 500;
  const PRIORITIES = {
    urgent: { rank: 0, icon: "◆", label: "Urgent" },
    high: { rank: 1, icon: "▲", label: "High" },
    medium: { rank: 2, icon: "■", label: "Medium" },
    low: { rank: 3, icon: "●", label: "Low" },
  };
  const { el } = Plantd;
  const rows = new Map(); // alarm name -> {record, tr}
  const pending = new Map(); // alarm name -> newest record not drawn yet
  let flushTimer = null;
  let view = "attention";
  let may = {};

  const root = () => document.getElementById("alarms-page");

  function newer(record, than) {
    return !than || typeof record.seq !== "number" || typeof than.seq !== "number" || record.seq >= than.seq;
  }

  function priorityOf(record) {
    return PRIORITIES[record.priority] || { rank: 9, icon: "?", label: String(record.priority) };
  }

  function waiting(record) {
    return !record.acknowledged;
  }

  function visible(record) {
    if (view === "active") return Boolean(record.active);
    if (view === "unacknowledged") return waiting(record);
    if (view === "attention") return Boolean(record.active) || waiting(record);
    return true;
  }

  function formatWhen(seconds) {
    if (typeof seconds !== "number") return "—";
    const today = new Date().toDateString() === new Date(seconds * 1000).toDateString();
    return Plantd.formatTime(seconds, !today);
  }

  function priorityBadge(record) {
    const p = priorityOf(record);
    return el("span", { class: "priority p-" + record.priority, "data-testid": "alarm-priority", "data-priority": record.priority },
      el("span", { class: "priority-icon", "aria-hidden": "true" }, p.icon), " ", p.label);
  }

  function stateBadge(record) {
    return el("span", { class: "alarm-state s-" + record.state, "data-testid": "alarm-state", "data-state": record.state },
      waiting(record) ? el("span", { class: "unack-icon", "aria-hidden": "true" }, "!") : null,
      record.state);
  }

  function flags(record) {
    const parts = [];
    if (record.shelved) {
      parts.push(el("span", { class: "flag", "data-flag": "shelved" },
        "shelved" + (typeof record.shelved_until === "number" ? " until " + formatWhen(record.shelved_until) : "")));
    }
    if (record.suppressed) parts.push(el("span", { class: "flag", "data-flag": "suppressed" }, "suppressed"));
    return parts;
  }

  function actionButton(label, testid, permitted, why, onclick) {
    return el("button", {
      type: "button", class: permitted ? "small" : "small denied", "data-testid": testid,
      "data-permitted": permitted ? "true" : "false",
      title: permitted ? null : "Your access does not include what this needs (" + why + "): it will be refused",
      onclick,
    }, label);
  }

  function actions(record) {
    const cell = el("div", { class: "actions-cell" });
    if (waiting(record)) {
      cell.append(actionButton("Acknowledge", "alarm-ack", may.ack, "ack", (event) => acknowledge([record.alarm], event.target)));
    }
    if (record.shelved) {
      cell.append(actionButton("Unshelve…", "alarm-unshelve", may.unshelve, "unshelve", () => openDialog("unshelve", [record.alarm])));
    } else {
      cell.append(actionButton("Shelve…", "alarm-shelve", may.shelve, "shelve", () => openDialog("shelve", [record.alarm])));
    }
    return cell;
  }

  function draw(entry) {
    const r = entry.record;
    const tr = entry.tr;
    tr.className = "alarm p-" + r.priority + (waiting(r) ? " unack" : "") + (r.shelved || r.suppressed ? " quiet" : "");
    Object.assign(tr.dataset, {
      state: r.state, priority: r.priority, active: String(Boolean(r.active)),
      acknowledged: String(Boolean(r.acknowledged)), shelved: String(Boolean(r.shelved)),
      suppressed: String(Boolean(r.suppressed)), seq: String(r.seq ?? ""),
    });
    const point = typeof r.point === "string" ? r.point : "";
    tr.replaceChildren(
      el("td", {}, priorityBadge(r)),
      el("td", {}, stateBadge(r)),
      el("td", { class: "alarm-name", "data-testid": "alarm-name" }, r.alarm),
      el("td", {}, point ? el("a", { href: "/trend?topic=" + encodeURIComponent("data." + point) }, point) : "—"),
      el("td", { class: "num", "data-testid": "alarm-value" }, Plantd.formatValue(r.value)),
      el("td", { class: "num" }, Plantd.formatValue(r.limit)),
      el("td", { class: "time", "data-testid": "alarm-since", title: (r.transition || "") + (r.by ? " by " + r.by : "") }, formatWhen(r.time)),
      el("td", { class: "message-cell" }, r.message || ""),
      el("td", { "data-testid": "alarm-flags" }, flags(r)),
      el("td", {}, actions(r)));
    tr.hidden = !visible(r);
  }

  function order(a, b) {
    return priorityOf(a.record).rank - priorityOf(b.record).rank || (b.record.time || 0) - (a.record.time || 0) ||
      a.record.alarm.localeCompare(b.record.alarm);
  }

  function arrange() {
    const body = document.getElementById("alarm-rows");
    const sorted = [...rows.values()].sort(order);
    sorted.forEach((entry, i) => { if (body.children[i] !== entry.tr) body.insertBefore(entry.tr, body.children[i] || null); });
    const shown = sorted.filter((entry) => !entry.tr.hidden).length;
    const unacked = sorted.filter((entry) => waiting(entry.record)).length;
    document.getElementById("alarms-count").textContent =
      shown + " shown of " + rows.size + " alarms · " + unacked + " unacknowledged";
    document.getElementById("alarms-empty").hidden = shown > 0;
    historyAlarms();
  }

  function apply(record) {
    if (!record || typeof record.alarm !== "string") return false;
    let entry = rows.get(record.alarm);
    if (entry && !newer(record, entry.record)) return false;
    if (!entry) {
      entry = { record, tr: el("tr", { "data-testid": "alarm-row", "data-alarm": record.alarm }) };
      rows.set(record.alarm, entry);
    }
    entry.record = record;
    draw(entry);
    if (typeof PlantdAlarmBadge !== "undefined") PlantdAlarmBadge.feed(record);
    return true;
  }

  function flush() {
    flushTimer = null;
    const changed = [];
    for (const record of pending.values()) if (apply(record)) changed.push(rows.get(record.alarm).tr);
    pending.clear();
    arrange();
    changed.forEach((tr) => tr.classList.remove("changed"));
    void document.body.offsetWidth;
    changed.forEach((tr) => tr.classList.add("changed"));
  }

  function onRecord(data) {
    const record = data.record;
    if (!record || typeof record.alarm !== "string") return;
    if (!newer(record, pending.get(record.alarm))) return;
    pending.set(record.alarm, record);
    if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  async function load() {
    try {
      const records = await Plantd.call(ALARMS, "list", { state: "all" });
      records.forEach(apply);
      Plantd.message(document.getElementById("alarms-error"), "");
    } catch (err) {
      Plantd.message(document.getElementById("alarms-error"), "Alarms: " + Plantd.problemText(err), "error");
    }
    arrange();
  }

  function setView(next) {
    view = next;
    document.querySelectorAll("[data-view][aria-pressed]").forEach((button) =>
      button.setAttribute("aria-pressed", button.dataset.view === view ? "true" : "false"));
    rows.forEach((entry) => { entry.tr.hidden = !visible(entry.record); });
    arrange();
    const url = new URL(location.href);
    url.searchParams.set("view", view);
    history.replaceState(null, "", url);
  }

  // --- actions ------------------------------------------------------------------------------

  function result(node, ok, text, err) {
    node.dataset.status = ok ? "ok" : "error";
    if (ok) delete node.dataset.http; else node.dataset.http = String((err && err.status) ?? "");
    Plantd.message(node, text, ok ? "ok" : "error");
  }

  async function acknowledge(names, button) {
    const node = document.getElementById("alarms-result");
    if (button) button.disabled = true;
    try {
      const events = await Plantd.call(ALARMS, "ack", names.length === 1 ? { alarm: names[0] } : { alarms: names });
      (events || []).forEach(apply);
      arrange();
      result(node, true, "Acknowledged: " + names.join(", ") + ".");
    } catch (err) {
      result(node, false, "Acknowledge " + names.join(", ") + ": " + Plantd.problemText(err), err);
    } finally {
      if (button) button.disabled = false;
    }
  }

  const dialog = () => document.getElementById("alarm-dialog");
  let asking = null; // {kind, names}

  function describe(name) {
    const entry = rows.get(name);
    if (!entry) return "“" + name + "”";
    const r = entry.record;
    return "“" + name + "” (" + priorityOf(r).label.toLowerCase() + ", " + r.state + (r.message ? ": " + r.message : "") + ")";
  }

  function summary() {
    const { kind, names } = asking;
    if (kind === "ack") {
      return "Acknowledge " + names.length + " alarm" + (names.length === 1 ? "" : "s") + ": " + names.map(describe).join("; ") + "?";
    }
    if (kind === "unshelve") {
      return "Unshelve alarm " + describe(names[0]) + "? If its condition is still active it annunciates again, unacknowledged.";
    }
    const select = document.getElementById("alarm-shelve-duration");
    const seconds = Number(select.value);
    const label = select.options[select.selectedIndex].textContent;
    const reason = document.getElementById("alarm-shelve-reason").value.trim();
    return "Shelve alarm " + describe(names[0]) + " for " + label + ", until " + Plantd.formatTime(Date.now() / 1000 + seconds) +
      (reason ? ", because “" + reason + "”" : "") + "? It will not annunciate until then (it still tracks its condition).";
  }

  function openDialog(kind, names) {
    asking = { kind, names };
    const permitted = { ack: may.ack, shelve: may.shelve, unshelve: may.unshelve }[kind];
    const titles = { ack: "Acknowledge alarms", shelve: "Shelve an alarm", unshelve: "Unshelve an alarm" };
    document.getElementById("alarm-dialog-title").textContent = titles[kind];
    Plantd.message(document.getElementById("alarm-dialog-permission"), permitted ? "" :
      "Your access (" + ([...Plantd.levels()].join(", ") || "none") + ") does not include what " + kind + " needs: it will be refused.", "warning");
    document.getElementById("alarm-shelve-fields").hidden = kind !== "shelve";
    document.getElementById("alarm-shelve-reason").value = "";
    document.getElementById("alarm-dialog-confirm").textContent = { ack: "Acknowledge", shelve: "Shelve", unshelve: "Unshelve" }[kind];
    document.getElementById("alarm-dialog-summary").textContent = summary();
    const node = document.getElementById("alarm-dialog-result");
    delete node.dataset.status;
    Plantd.message(node, "");
    document.getElementById("alarm-dialog-ask").hidden = false;
    document.getElementById("alarm-dialog-done").hidden = true;
    dialog().showModal();
    (kind === "shelve" ? document.getElementById("alarm-shelve-duration") : document.getElementById("alarm-dialog-confirm")).focus();
  }

  async function confirmDialog() {
    const { kind, names } = asking;
    const button = document.getElementById("alarm-dialog-confirm");
    const node = document.getElementById("alarm-dialog-result");
    button.disabled = true;
    try {
      let events;
      if (kind === "ack") {
        events = await Plantd.call(ALARMS, "ack", { alarms: names });
      } else if (kind === "shelve") {
        const params = { alarm: names[0], duration: Number(document.getElementById("alarm-shelve-duration").value) };
        const reason = document.getElementById("alarm-shelve-reason").value.trim();
        if (reason) params.reason = reason;
        events = await Plantd.call(ALARMS, "shelve", params);
      } else {
        events = await Plantd.call(ALARMS, "unshelve", { alarm: names[0] });
      }
      (events || []).forEach(apply);
      arrange();
      const done = { ack: "Acknowledged", shelve: "Shelved", unshelve: "Unshelved" }[kind];
      result(node, true, done + ": " + names.join(", ") + ".");
    } catch (err) {
      result(node, false, Plantd.problemText(err), err);
    } finally {
      button.disabled = false;
      document.getElementById("alarm-dialog-ask").hidden = true;
      document.getElementById("alarm-dialog-done").hidden = false;
      document.getElementById("alarm-dialog-close").focus();
    }
  }

  function acknowledgeShown() {
    const names = [...rows.values()].filter((e) => !e.tr.hidden && waiting(e.record)).sort(order).map((e) => e.record.alarm);
    if (!names.length) {
      result(document.getElementById("alarms-result"), true, "Nothing shown waits for an acknowledgement.");
      return;
    }
    openDialog("ack", names);
  }

  // --- history ------------------------------------------------------------------------------

  function historyAlarms() {
    const select = document.getElementById("history-alarm");
    const names = [...rows.keys()].sort();
    const have = [...select.options].slice(1).map((o) => o.value);
    if (names.length === have.length && names.every((n, i) => n === have[i])) return;
    const current = select.value;
    select.replaceChildren(select.options[0], ...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(current) ? current : "";
  }

  function historyRow(r) {
    const note = [r.comment, r.by && r.transition === "shelved" && typeof r.shelved_until === "number" ?
      "until " + formatWhen(r.shelved_until) : ""].filter(Boolean).join(" · ");
    return el("tr", { "data-testid": "history-row", "data-alarm": r.alarm, "data-transition": r.transition || "" },
      el("td", { class: "time" }, Plantd.formatTime(r.time)),
      el("td", {}, r.alarm),
      el("td", { "data-testid": "history-transition" }, r.transition || ""),
      el("td", {}, r.state),
      el("td", {}, priorityBadge(r)),
      el("td", { class: "num" }, Plantd.formatValue(r.value)),
      el("td", { class: "num" }, Plantd.formatValue(r.limit)),
      el("td", { "data-testid": "history-by" }, r.by || ""),
      el("td", { class: "message-cell" }, note));
  }

  async function loadHistory() {
    const node = document.getElementById("history-error");
    const now = Date.now() / 1000;
    const params = { since: now - Number(document.getElementById("history-range").value), limit: HISTORY_LIMIT };
    const alarm = document.getElementById("history-alarm").value;
    if (alarm) params.alarm = alarm;
    try {
      const records = await Plantd.call(ALARMS, "history", params);
      document.getElementById("history-rows").replaceChildren(...records.map(historyRow));
      document.getElementById("history-empty").hidden = records.length > 0;
      Plantd.message(node, "");
    } catch (err) {
      Plantd.message(node, "History: " + Plantd.problemText(err), "error");
    }
  }

  function showTab(name) {
    const past = name === "history";
    document.getElementById("tab-current").setAttribute("aria-selected", past ? "false" : "true");
    document.getElementById("tab-history").setAttribute("aria-selected", past ? "true" : "false");
    document.getElementById("alarms-current").hidden = past;
    document.getElementById("alarms-history").hidden = !past;
    if (past) loadHistory();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const data = root().dataset;
    may = { ack: data.mayAck === "true", shelve: data.mayShelve === "true", unshelve: data.mayUnshelve === "true" };
    view = data.view || "attention";
    document.querySelectorAll("[data-view][aria-pressed]").forEach((button) =>
      button.addEventListener("click", () => setView(button.dataset.view)));
    document.getElementById("alarm-ack-all").addEventListener("click", acknowledgeShown);
    document.getElementById("tab-current").addEventListener("click", () => showTab("current"));
    document.getElementById("tab-history").addEventListener("click", () => showTab("history"));
    document.getElementById("history-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      loadHistory();
    });
    document.getElementById("history-alarm").addEventListener("change", loadHistory);
    document.getElementById("history-range").addEventListener("change", loadHistory);
    const refreshSummary = () => { if (asking) document.getElementById("alarm-dialog-summary").textContent = summary(); };
    document.getElementById("alarm-shelve-duration").addEventListener("change", refreshSummary);
    document.getElementById("alarm-shelve-reason").addEventListener("input", refreshSummary);
    document.getElementById("alarm-shelve-reason").addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault(); // not a submit: confirm is a click
    });
    document.getElementById("alarm-dialog-confirm").addEventListener("click", confirmDialog);
    document.getElementById("alarm-dialog-cancel").addEventListener("click", () => dialog().close());
    document.getElementById("alarm-dialog-close").addEventListener("click", () => dialog().close());
    Plantd.stream(["event.alarm."], { record: onRecord }, document.getElementById("stream-status"));
    load();
    // Shelving ends by itself: the service says so with an event; the "since" column of
    // today's alarms and the day boundary are the only things that age here.
    setInterval(() => rows.forEach((entry) => {
      const cell = entry.tr.querySelector('[data-testid="alarm-since"]');
      if (cell) cell.textContent = formatWhen(entry.record.time);
    }), 60_000);
  });
})();
