/* Control: loops, interlocks and calculated points of plantd-control (org.plantd.Control list).
 *
 * The list is asked for every 2 s (a loop's process value and output move all the time) and at
 * once, 100 ms after the last of a burst, when an `event.control.` record arrives (a mode
 * change, a trip, a reset, a failed write), so a change made anywhere shows without waiting.
 * Calculated points' values come live from the stream (`data.calc`, one batch per evaluation)
 * and from the list (each calculation's last result); whichever is newer is shown, and "—"
 * until a calculation has a result at all.
 *
 * Every change goes through one dialog: for a setpoint or a manual output, the value first;
 * then a confirmation naming exactly what changes (which loop, from what to what, and what
 * the loop will write where); then the service's answer or its refusal in words. Reset is
 * offered only while an interlock awaits it. The broker decides who may: buttons a person's
 * levels do not cover are marked (data-permitted="false") and the dialog says so.
 */
"use strict";

(() => {
  const CONTROL = "org.plantd.Control";
  const REFRESH_MS = 2000;
  const SOON_MS = 100;
  const { el } = Plantd;
  const calcs = new Map(); // "calc.NAME" -> {row, cells, time}
  let loops = new Map(); // name -> status entry
  let interlocks = new Map();
  let refreshTimer = null;
  let may = {};

  const fmt = Plantd.formatValue;

  function button(label, testid, permitted, operation, onclick, disabled, why) {
    return el("button", {
      type: "button", class: permitted ? "small" : "small denied", "data-testid": testid,
      "data-permitted": permitted ? "true" : "false", disabled: disabled || null,
      title: disabled ? why : permitted ? null : "Your access does not include what " + operation + " needs: it will be refused",
      onclick,
    }, label);
  }

  function modeBadge(loop) {
    const mode = loop.mode || "?";
    const kind = { auto: "v-ok", manual: "v-unknown", tracking: "v-degraded", failed: "v-failed" }[mode] || "v-unknown";
    const extra = mode === "tracking" && loop.interlock ? " (held by " + loop.interlock + ")" : "";
    return el("span", {}, el("span", { class: "verdict " + kind, "data-testid": "loop-mode", "data-mode": mode }, mode + extra),
      loop.problem ? el("span", { class: "hint" }, " " + loop.problem) : null);
  }

  function loopRow(loop) {
    const manual = loop.operator_mode === "manual";
    const target = manual ? "auto" : "manual";
    const ramping = typeof loop.working_setpoint === "number" && typeof loop.setpoint === "number" &&
      Math.abs(loop.working_setpoint - loop.setpoint) > 1e-9;
    const write = loop.last_write_error ? el("span", { class: "attention" }, "failed: " + loop.last_write_error)
      : typeof loop.last_write_time === "number" ? Plantd.formatTime(loop.last_write_time, false) : "none yet";
    return el("tr", { "data-testid": "loop-row", "data-loop": loop.name, "data-mode": loop.mode, "data-operator-mode": loop.operator_mode },
      el("td", { "data-testid": "loop-name" }, loop.name),
      el("td", {}, modeBadge(loop)),
      el("td", { class: "num", "data-testid": "loop-pv", title: loop.measurement },
        fmt(loop.pv), el("div", { class: "hint" }, loop.measurement + (loop.pv_quality && loop.pv_quality !== "good" ? " · " + loop.pv_quality : ""))),
      el("td", { class: "num", "data-testid": "loop-setpoint" }, fmt(loop.setpoint),
        ramping ? el("div", { class: "hint" }, "ramping, now " + fmt(loop.working_setpoint)) : null),
      el("td", { class: "num", "data-testid": "loop-output" }, fmt(loop.output), el("div", { class: "hint" }, loop.output_point)),
      el("td", { class: "time", "data-testid": "loop-last-write" }, write),
      el("td", {}, el("div", { class: "actions-cell" },
        button(manual ? "Auto…" : "Manual…", "loop-mode-button", may.mode, "mode", () => ask({ kind: "mode", loop, mode: target })),
        button("Setpoint…", "loop-setpoint-button", may.setpoint, "setpoint", () => ask({ kind: "setpoint", loop })),
        button("Output…", "loop-output-button", may.output, "output", () => ask({ kind: "output", loop }),
          !manual, "Only a loop in manual takes an output"))));
  }

  function interlockRow(lock) {
    const kind = { normal: "v-ok", tripped: "v-failed", "awaiting-reset": "v-degraded" }[lock.state] || "v-unknown";
    const condition = lock.condition === true ? "true" : lock.condition === false ? "false" : "unknown";
    const awaiting = lock.state === "awaiting-reset";
    return el("tr", { "data-testid": "interlock-row", "data-interlock": lock.name, "data-state": lock.state },
      el("td", {}, lock.name),
      el("td", {}, el("span", { class: "verdict " + kind, "data-testid": "interlock-state" }, lock.state)),
      el("td", { "data-testid": "interlock-condition" }, el("code", {}, lock.when || ""), " → " + condition),
      el("td", {}, lock.output + " = " + fmt(lock.safe_value), el("div", { class: "hint" }, "reset: " + lock.reset)),
      el("td", { class: "time" }, typeof lock.tripped_at === "number" ? Plantd.formatTime(lock.tripped_at) : "—"),
      el("td", {}, el("div", { class: "actions-cell" },
        button("Reset…", "interlock-reset-button", may.reset, "reset", () => ask({ kind: "reset", lock }),
          !awaiting, lock.state === "tripped" ? "Its condition still holds: nothing to reset yet" : "Not tripped"))));
  }

  function calcRow(calc) {
    let entry = calcs.get(calc.point);
    if (entry) {
      latest(entry, calc);
      return entry.row;
    }
    const cells = {
      value: el("td", { class: "num value", "data-testid": "calc-value" }, "—"),
      quality: el("td", { "data-testid": "calc-quality" }),
      age: el("td", { class: "num" }),
    };
    const row = el("tr", { "data-testid": "calc-row", "data-point": calc.point },
      el("td", {}, el("a", { href: "/trend?topic=" + encodeURIComponent("data." + calc.point) }, calc.point)),
      el("td", {}, el("code", {}, calc.expr)), cells.value, cells.quality, cells.age);
    if (calc.description) row.title = calc.description;
    entry = { row, cells, time: null, unit: calc.unit || "" };
    calcs.set(calc.point, entry);
    latest(entry, calc);
    return row;
  }

  function latest(entry, calc) { // the list's last result, unless the stream brought a newer one
    if (typeof calc.timestamp !== "number" || (entry.time !== null && calc.timestamp <= entry.time)) return;
    showCalc(entry, { value: calc.value, quality: calc.quality, time: calc.timestamp });
  }

  function showCalc(entry, sample) {
    entry.cells.value.textContent = fmt(sample.value) + (entry.unit ? " " + entry.unit : "");
    entry.cells.value.dataset.value = JSON.stringify(sample.value ?? null);
    entry.cells.quality.replaceChildren(el("span", { class: "quality q-" + sample.quality }, sample.quality || ""));
    entry.time = typeof sample.time === "number" ? sample.time : entry.time;
    age(entry, Date.now() / 1000);
  }

  function age(entry, now) {
    entry.cells.age.textContent = entry.time === null ? "" : Plantd.formatAge(now - entry.time);
  }

  function onSamples(event) {
    for (const sample of event.samples || []) {
      let topic = sample.topic || event.topic;
      if (sample.point && !topic.endsWith("." + sample.point)) topic = topic + "." + sample.point;
      const entry = calcs.get(topic.slice("data.".length));
      if (entry) showCalc(entry, sample);
    }
  }

  async function refresh() {
    refreshTimer = null;
    try {
      const answer = await Plantd.call(CONTROL, "list", {});
      loops = new Map((answer.loops || []).map((l) => [l.name, l]));
      interlocks = new Map((answer.interlocks || []).map((i) => [i.name, i]));
      document.getElementById("loop-rows").replaceChildren(...[...loops.values()].map(loopRow));
      document.getElementById("interlock-rows").replaceChildren(...[...interlocks.values()].map(interlockRow));
      document.getElementById("calc-rows").replaceChildren(...(answer.calc || []).map(calcRow));
      document.getElementById("loops-empty").hidden = loops.size > 0;
      document.getElementById("interlocks-empty").hidden = interlocks.size > 0;
      document.getElementById("calc-empty").hidden = (answer.calc || []).length > 0;
      document.getElementById("control-updated").textContent = "updated " + Plantd.formatTime(Date.now() / 1000, false);
      Plantd.message(document.getElementById("control-error"), "");
    } catch (err) {
      Plantd.message(document.getElementById("control-error"), "Control: " + Plantd.problemText(err), "error");
    }
    schedule(REFRESH_MS);
  }

  function schedule(ms) {
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, ms);
  }

  // --- the change dialog --------------------------------------------------------------------

  const dialog = () => document.getElementById("control-dialog");
  let change = null; // {kind, loop | lock, mode?, value?}

  function step(name) {
    document.getElementById("control-step-value").hidden = name !== "value";
    document.getElementById("control-step-confirm").hidden = name !== "confirm";
    document.getElementById("control-done").hidden = name !== "done";
  }

  function summary() {
    const { kind, loop, lock, mode, value } = change;
    if (kind === "mode" && mode === "auto") {
      return "Switch loop “" + loop.name + "” from " + loop.operator_mode + " to auto? It will then compute its output from " +
        loop.measurement + " (now " + fmt(loop.pv) + ") and setpoint " + fmt(loop.setpoint) + " and write it to " +
        loop.output_point + " every period, starting from the current output " + fmt(loop.output) + " (bumpless).";
    }
    if (kind === "mode") {
      return "Switch loop “" + loop.name + "” from " + loop.operator_mode + " to manual? It stops writing " + loop.output_point +
        ", which keeps its current output " + fmt(loop.output) + " until someone sets another.";
    }
    if (kind === "setpoint") {
      return "Change the setpoint of loop “" + loop.name + "” from " + fmt(loop.setpoint) + " to " + fmt(value) + "?" +
        (loop.operator_mode === "auto" ? " The loop then drives " + loop.output_point + " towards it." : " (The loop is in manual: it takes effect in auto.)");
    }
    if (kind === "output") {
      return "Set the manual output of loop “" + loop.name + "” from " + fmt(loop.output) + " to " + fmt(value) +
        ": write " + fmt(value) + " to " + loop.output_point + "?";
    }
    return "Reset interlock “" + lock.name + "”? Its condition (" + lock.when + ") is gone; " + lock.output +
      " is released from its safe value " + fmt(lock.safe_value) + " (it stays there until its owner writes it again).";
  }

  function ask(what) {
    change = what;
    const operation = what.kind;
    const name = what.loop ? "loop “" + what.loop.name + "”" : "interlock “" + what.lock.name + "”";
    const titles = { mode: "Change a loop's mode", setpoint: "Change a setpoint", output: "Set a manual output", reset: "Reset an interlock" };
    document.getElementById("control-dialog-title").textContent = titles[operation];
    document.getElementById("control-where").textContent = "Of " + name + " (" + CONTROL + " " + operation + ")";
    Plantd.message(document.getElementById("control-permission"), may[operation] ? "" :
      "Your access (" + ([...Plantd.levels()].join(", ") || "none") + ") does not include what " + operation + " needs: it will be refused.", "warning");
    const result = document.getElementById("control-result");
    delete result.dataset.status;
    Plantd.message(result, "");
    const withValue = operation === "setpoint" || operation === "output";
    document.getElementById("control-back").textContent = withValue ? "Back" : "Cancel";
    document.getElementById("control-confirm").textContent =
      { mode: "Switch to " + what.mode, setpoint: "Change setpoint", output: "Write output", reset: "Reset" }[operation];
    dialog().showModal();
    if (withValue) {
      const input = document.getElementById("control-value");
      const now = operation === "setpoint" ? what.loop.setpoint : what.loop.output;
      document.getElementById("control-value-label").textContent = operation === "setpoint" ? "New setpoint" : "New output";
      document.getElementById("control-value-hint").textContent = "A number; now " + fmt(now) + ".";
      input.value = typeof now === "number" ? String(now) : "";
      step("value");
      input.focus();
      input.select();
    } else {
      document.getElementById("control-summary").textContent = summary();
      step("confirm");
      document.getElementById("control-confirm").focus();
    }
  }

  function review() {
    const text = document.getElementById("control-value").value.trim();
    const value = Number(text);
    const result = document.getElementById("control-result");
    if (text === "" || !Number.isFinite(value)) {
      Plantd.message(result, "Enter a number.", "error");
      return;
    }
    Plantd.message(result, "");
    change.value = value;
    document.getElementById("control-summary").textContent = summary();
    step("confirm");
    document.getElementById("control-confirm").focus();
  }

  function back() {
    if (change.kind === "setpoint" || change.kind === "output") step("value");
    else dialog().close();
  }

  async function confirmChange() {
    const { kind, loop, lock, mode, value } = change;
    const button = document.getElementById("control-confirm");
    const result = document.getElementById("control-result");
    const params = kind === "mode" ? { loop: loop.name, mode } : kind === "reset" ? { interlock: lock.name } : { loop: loop.name, value };
    button.disabled = true;
    try {
      await Plantd.call(CONTROL, kind, params);
      result.dataset.status = "ok";
      delete result.dataset.http;
      const done = { mode: "Loop " + (loop && loop.name) + " is now in " + mode + ".",
        setpoint: "Setpoint of " + (loop && loop.name) + ": " + fmt(value) + ".",
        output: "Output of " + (loop && loop.name) + ": " + fmt(value) + ".",
        reset: "Interlock " + (lock && lock.name) + " reset." }[kind];
      Plantd.message(result, done, "ok");
      schedule(0);
    } catch (err) {
      result.dataset.status = "error";
      result.dataset.http = String(err.status ?? "");
      Plantd.message(result, Plantd.problemText(err), "error");
    } finally {
      button.disabled = false;
      step("done");
      document.getElementById("control-close").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const data = document.getElementById("control-page").dataset;
    may = { mode: data.mayMode === "true", setpoint: data.maySetpoint === "true", output: data.mayOutput === "true", reset: data.mayReset === "true" };
    document.getElementById("control-next").addEventListener("click", review);
    document.getElementById("control-value").addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); review(); }
    });
    document.getElementById("control-back").addEventListener("click", back);
    document.getElementById("control-confirm").addEventListener("click", confirmChange);
    document.getElementById("control-cancel").addEventListener("click", () => dialog().close());
    document.getElementById("control-close").addEventListener("click", () => dialog().close());
    Plantd.stream(["event.control.", "data.calc"], {
      samples: onSamples,
      record: () => schedule(SOON_MS),
    }, document.getElementById("stream-status"));
    refresh();
    setInterval(() => {
      const now = Date.now() / 1000;
      calcs.forEach((entry) => age(entry, now));
    }, 1000);
  });
})();
