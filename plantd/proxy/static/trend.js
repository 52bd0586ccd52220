/* Trend: the historian's samples of one point over 10 min, 1 h or 24 h, with the live tail
 * from the SSE stream appended. 10 min and 1 h ask for raw samples, 24 h for minute means
 * (at most 1,440 rows; raw could be 86,400 a point). Pages of the historian's answer are
 * followed (`next`) up to MAX_PAGES. Redraws are gathered to at most one per 200 ms.
 * The canvas's data-points says how many points are plotted (for tests).
 */
"use strict";

(() => {
  const HISTORIAN = "org.plantd.Historian";
  const MAX_PAGES = 10;
  const REDRAW_MS = 200;
  let canvas, topic, status;
  let range = 600;
  let series = []; // [{t, v}] in time order
  let loading = 0; // which load is current (a range clicked twice quickly)
  let redrawTimer = null;

  function numeric(value, quality) {
    if (quality === "bad") return null;
    if (typeof value === "boolean") return value ? 1 : 0;
    return typeof value === "number" ? value : null;
  }

  function glob(name) {
    return name.replace(/[[*?]/g, (c) => "[" + c + "]"); // a literal name as a glob
  }

  function redraw() {
    redrawTimer = null;
    const to = Date.now() / 1000;
    const from = to - range;
    series = series.filter((p) => p.t >= from - 60);
    canvas.dataset.points = String(PlantdChart.draw(canvas, series, { from, to }));
  }

  function scheduleRedraw() {
    if (redrawTimer === null) redrawTimer = setTimeout(redraw, REDRAW_MS);
  }

  async function load() {
    const mine = ++loading;
    const until = Date.now() / 1000;
    const resolution = range > 3600 ? "minute" : "raw";
    status.textContent = "loading…";
    const history = [];
    try {
      let after = null;
      for (let page = 0; page < MAX_PAGES; page++) {
        const params = { points: glob(topic.slice(5)), since: until - range, until, resolution, limit: 10000 };
        if (after !== null) params.after = after;
        const answer = await Plantd.call(HISTORIAN, "query", params);
        const column = Object.fromEntries(answer.columns.map((name, i) => [name, i]));
        for (const row of answer.rows) {
          if (resolution === "raw") history.push({ t: row[column.timestamp], v: numeric(row[column.value], row[column.quality]) });
          else history.push({ t: row[column.bucket] + 30, v: numeric(row[column.mean], "good") });
        }
        after = answer.next;
        if (after === null || after === undefined) break;
      }
      if (mine !== loading) return;
      const last = history.length ? history[history.length - 1].t : -Infinity;
      series = history.concat(series.filter((p) => p.t > last)); // live samples that came meanwhile
      const noun = history.length === 1 ? " sample" : " samples";
      status.textContent = history.length + noun + " from the historian" + (resolution === "minute" ? " (minute means)" : "");
    } catch (err) {
      if (mine !== loading) return;
      status.textContent = "historian: " + Plantd.problemText(err);
    }
    redraw();
  }

  function onSamples(event) {
    let added = false;
    for (const sample of event.samples || []) {
      let name = sample.topic || event.topic;
      if (sample.point && !name.endsWith("." + sample.point)) name += "." + sample.point;
      if (name !== topic) continue; // the prefix data.a.b also matches data.a.bc
      series.push({ t: sample.time, v: numeric(sample.value, sample.quality) });
      added = true;
    }
    if (added) scheduleRedraw();
  }

  document.addEventListener("DOMContentLoaded", () => {
    canvas = document.getElementById("trend-canvas");
    if (!canvas) return;
    topic = canvas.dataset.topic;
    status = document.getElementById("trend-status");
    for (const button of document.querySelectorAll("button.range")) {
      button.addEventListener("click", () => {
        range = Number(button.dataset.range);
        document.querySelectorAll("button.range").forEach((b) => b.setAttribute("aria-pressed", b === button ? "true" : "false"));
        load();
      });
    }
    Plantd.stream([topic], { samples: onSamples }, document.getElementById("stream-status"));
    new ResizeObserver(scheduleRedraw).observe(canvas);
    setInterval(scheduleRedraw, 5000); // the time axis moves on even without samples
    load();
  });
})();
