/* PlantdChart.draw(canvas, series, {from, to}): a time-series line chart on a canvas.
 *
 * series: [{t: unix seconds, v: number or null}] in time order; null (or not finite) breaks the
 * line. The time axis spans from..to; the value axis the data's range with 5 % margin, "nice"
 * ticks (1, 2, 5 × 10^k). When there are more points than pixel columns, each column draws the
 * min..max of its points (a vertical stroke), so spikes survive however long the range.
 * Colours come from the canvas's CSS (color, and --grid / --axis custom properties).
 * Returns how many points of the series fall in the range (what was plotted).
 */
"use strict";

const PlantdChart = (() => {
  const MARGIN = { left: 58, right: 12, top: 10, bottom: 26 };
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = [1, 2, 5, 10].find((m) => m * power >= raw) || 10;
    return unit * power;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function timeLabel(t, step) {
    const d = new Date(t * 1000);
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    return step < 60 ? hm + ":" + pad(d.getSeconds()) : hm;
  }

  function valueLabel(v, step) {
    const decimals = Math.max(0, -Math.floor(Math.log10(step)));
    return v.toFixed(Math.min(decimals, 6));
  }

  function draw(canvas, series, range) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const lineColour = style.color;
    const gridColour = style.getPropertyValue("--grid").trim() || "#ddd";
    const axisColour = style.getPropertyValue("--axis").trim() || "#555";
    g.font = "12px " + style.fontFamily;

    const { from, to } = range;
    const shown = series.filter((p) => p.t >= from && p.t <= to);
    const values = shown.map((p) => p.v).filter((v) => typeof v === "number" && isFinite(v));
    const plot = { x: MARGIN.left, y: MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
    if (plot.w < 10 || plot.h < 10) return shown.length;

    let low = values.length ? Math.min(...values) : 0;
    let high = values.length ? Math.max(...values) : 1;
    if (low === high) { low -= 1; high += 1; }
    const margin = (high - low) * 0.05;
    low -= margin; high += margin;
    const x = (t) => plot.x + ((t - from) / (to - from)) * plot.w;
    const y = (v) => plot.y + plot.h - ((v - low) / (high - low)) * plot.h;

    // Grid and labels.
    g.strokeStyle = gridColour;
    g.fillStyle = axisColour;
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    const vStep = niceStep(high - low, Math.max(2, Math.floor(plot.h / 40)));
    for (let v = Math.ceil(low / vStep) * vStep; v <= high; v += vStep) {
      const py = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(plot.x, py); g.lineTo(plot.x + plot.w, py); g.stroke();
      g.fillText(valueLabel(v, vStep), plot.x - 6, py);
    }
    const wanted = Math.max(2, Math.floor(plot.w / 90));
    const tStep = TIME_STEPS.find((s) => (to - from) / s <= wanted) || 86400;
    const offset = new Date().getTimezoneOffset() * 60; // ticks on local minutes/hours
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let t = Math.ceil((from - offset) / tStep) * tStep + offset; t <= to; t += tStep) {
      const px = Math.round(x(t)) + 0.5;
      g.beginPath(); g.moveTo(px, plot.y); g.lineTo(px, plot.y + plot.h); g.stroke();
      g.fillText(timeLabel(t, tStep), px, plot.y + plot.h + 6);
    }
    g.strokeStyle = axisColour;
    g.strokeRect(plot.x + 0.5, plot.y + 0.5, plot.w, plot.h);

    // The line: per pixel column min..max when the points outnumber the columns.
    g.save();
    g.beginPath();
    g.rect(plot.x, plot.y, plot.w, plot.h);
    g.clip();
    g.strokeStyle = lineColour;
    g.lineWidth = 1.5;
    g.lineJoin = "round";
    g.beginPath();
    let drawing = false;
    if (shown.length > plot.w * 2) {
      const columns = new Map();
      for (const p of shown) {
        if (typeof p.v !== "number" || !isFinite(p.v)) continue;
        const column = Math.floor(x(p.t));
        const c = columns.get(column);
        if (c) { c.min = Math.min(c.min, p.v); c.max = Math.max(c.max, p.v); c.last = p.v; }
        else columns.set(column, { min: p.v, max: p.v, first: p.v, last: p.v });
      }
      let previous = null;
      for (const [column, c] of [...columns].sort((a, b) => a[0] - b[0])) {
        if (previous !== null && column - previous > 3) drawing = false; // a gap in the data
        if (!drawing) { g.moveTo(column, y(c.first)); drawing = true; } else g.lineTo(column, y(c.first));
        g.lineTo(column, y(c.min)); g.lineTo(column, y(c.max)); g.lineTo(column, y(c.last));
        previous = column;
      }
    } else {
      for (const p of shown) {
        if (typeof p.v !== "number" || !isFinite(p.v)) { drawing = false; continue; }
        if (!drawing) { g.moveTo(x(p.t), y(p.v)); drawing = true; } else g.lineTo(x(p.t), y(p.v));
      }
      if (shown.length === 1 && values.length === 1) {
        g.arc(x(shown[0].t), y(shown[0].v), 2, 0, 2 * Math.PI);
      }
    }
    g.stroke();
    g.restore();
    if (!values.length) {
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillStyle = axisColour;
      g.fillText("no numeric samples in this range", plot.x + plot.w / 2, plot.y + plot.h / 2);
    }
    return shown.length;
  }

  return { draw };
})();
