"""The trace as a page an engineer opens in a browser: one plot per point, inline SVG, no scripts.

Each numeric point (true/false plotted as 1/0) gets a chart: its samples as a step line (a
published value holds until the next one), spans of ``bad`` quality shaded red under it, and a
dashed line at each step of the scenario, numbered as in the step table above the charts.
Text and other values are listed in a table instead. The page needs nothing but the file: no
JavaScript, no fonts, no network; and it is well-formed XML (XHTML syntax), so tools can parse
it. A PNG with matplotlib is :func:`write_png`, if matplotlib is installed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from hil.scenario._expect import show
from hil.scenario._result import ScenarioResult
from hil.scenario._trace import Row, Trace, numeric

__all__ = ["write_html", "write_png"]

_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 880, 150, 64, 12, 10, 22
_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 15px; margin: 18px 0 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
.passed { color: #1a7f37; } .failed, .error { color: #cf222e; } .skipped { color: #888; }
pre { margin: 0; white-space: pre-wrap; font-size: 12px; }
svg text { font-size: 11px; fill: #555; }
"""


def write_html(result: ScenarioResult, path: Path) -> None:
    trace = result.trace
    verdict = "passed" if result.passed else "failed"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"/>',
        f"<title>{_e(result.name)}: {verdict}</title><style>{_STYLE}</style></head><body>",
        f'<h1>Scenario {_e(result.name)}: <span class="{verdict}">{verdict.upper()}</span></h1>',
        f"<p>{_e(str(result.source or ''))} — {result.duration:.1f} s</p>",
    ]
    if result.setup_error is not None:
        parts.append(f'<p class="error">setup: {_e(result.setup_error)}</p>')
    for error in result.teardown_errors:
        parts.append(f'<p class="error">teardown: {_e(error)}</p>')
    parts.append("<table><tr><th>#</th><th>t (s)</th><th>step</th><th>result</th></tr>")
    for step in result.steps:
        parts.append(
            f"<tr><td>{step.index}</td><td>{step.t:.2f}</td><td>{_e(step.description)}</td>"
            f'<td class="{step.status}">{step.status}<pre>{_e(step.message)}</pre></td></tr>'
        )
    parts.append("</table>")
    times = [*(row.t for row in trace.rows), *(mark.t for mark in trace.marks)]
    end = max(times, default=1.0) or 1.0
    others: list[Row] = []
    for (source, point), rows in trace.series().items():
        if any(numeric(row.value) is not None for row in rows):
            parts.append(f"<h2>{_e(point)} <small>({source})</small></h2>")
            parts.append(_chart(rows, trace, end))
        else:
            others += rows
    if others:
        parts.append("<h2>Other values</h2><table><tr><th>t (s)</th><th>point</th><th>value</th>")
        parts.append("<th>quality</th></tr>")
        for row in others:
            parts.append(
                f"<tr><td>{row.t:.2f}</td><td>{_e(row.point)}</td><td>{_e(show(row.value))}</td>"
                f"<td>{_e(row.quality)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


def _chart(rows: Sequence[Row], trace: Trace, end: float) -> str:
    values = [v for v in (numeric(row.value) for row in rows) if v is not None]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(t: float) -> float:
        return _LEFT + plot_w * t / end

    def y(v: float) -> float:
        return _TOP + plot_h * (high - v) / (high - low)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for i, row in enumerate(rows):  # bad spans: from a bad sample to the next sample
        if row.quality == "bad":
            until = rows[i + 1].t if i + 1 < len(rows) else end
            out.append(
                f'<rect x="{x(row.t):.1f}" y="{_TOP}" width="{max(1.0, x(until) - x(row.t)):.1f}" '
                f'height="{plot_h}" fill="#cf222e" fill-opacity="0.15"><title>bad from '
                f"t={row.t:.2f} s</title></rect>"
            )
    for mark in trace.marks:
        colour = "#888" if mark.ok is None else "#1a7f37" if mark.ok else "#cf222e"
        out.append(
            f'<line x1="{x(mark.t):.1f}" y1="{_TOP}" x2="{x(mark.t):.1f}" y2="{_TOP + plot_h}" '
            f'stroke="{colour}" stroke-dasharray="3,3"><title>{_e(mark.label)}</title></line>'
        )
    path: list[str] = []
    previous: float | None = None
    for row in rows:
        value = numeric(row.value)
        if value is None:
            previous = None
            continue
        if previous is None:
            path.append(f"M{x(row.t):.1f},{y(value):.1f}")
        else:
            path.append(f"H{x(row.t):.1f}V{y(value):.1f}")
        previous = value
    if previous is not None:
        path.append(f"H{x(end):.1f}")
    out.append(f'<path d="{"".join(path)}" fill="none" stroke="#0969da" stroke-width="1.5"/>')
    for label_value in (high - pad, low + pad):
        out.append(
            f'<text x="{_LEFT - 6}" y="{y(label_value) + 4:.1f}" text-anchor="end">'
            f"{_e(show(label_value))}</text>"
        )
    for tick in _ticks(end):
        out.append(
            f'<text x="{x(tick):.1f}" y="{_HEIGHT - 6}" text-anchor="middle">{tick:g} s</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _ticks(end: float) -> list[float]:
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if end / s <= 10), 1200)
    return [float(t) for t in range(0, int(end) + 1, step)]


def write_png(result: ScenarioResult, path: Path) -> bool:
    """The numeric points as a PNG with matplotlib; False (nothing written) if not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series = [
        (key, rows)
        for key, rows in result.trace.series().items()
        if any(numeric(row.value) is not None for row in rows)
    ]
    if not series:
        return False
    figure, axes = plt.subplots(len(series), 1, sharex=True, figsize=(10, 1.8 * len(series)))
    for axis, ((_, point), rows) in zip(list(getattr(axes, "flat", [axes])), series, strict=True):
        points = [(row.t, numeric(row.value)) for row in rows if numeric(row.value) is not None]
        axis.step([t for t, _ in points], [v for _, v in points], where="post")
        axis.set_ylabel(point, rotation=0, ha="right", fontsize=8)
        for mark in result.trace.marks:
            axis.axvline(mark.t, color="grey", linestyle=":", linewidth=0.8)
    figure.suptitle(f"{result.name}: {'passed' if result.passed else 'failed'}")
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _e(text: str) -> str:
    return html.escape(text, quote=True)
