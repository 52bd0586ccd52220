"""``plant control [list] | mode | setpoint | output | reset``: the loops, interlocks and
calculated points of ``plantd-control`` (``org.plantd.Control``) from the command line.

``list`` (the default) prints three tables: the loops (mode — ``auto``, ``manual``, or what
overrides the operator's choice: ``tracking`` while an interlock holds the output, ``failed``
while the measurement is bad —, the measurement with its quality when not good, the setpoint
and the ramping working setpoint, the output and the point it goes to, and the last write with
its error if it failed), the interlocks (state ``normal``, ``tripped`` or ``awaiting-reset``,
the output point and the safe value it is held at) and the calculated points (the last value
when the service reports one, and the expression).

``mode LOOP auto|manual [--output V]``, ``setpoint LOOP V``, ``output LOOP V`` (a manual
loop's output) and ``reset INTERLOCK`` (release a tripped interlock whose condition is gone)
print what changed. A refusal (``control.unknown``, ``control.not-manual``,
``control.still-tripped``, …) prints ``plant: CODE: MESSAGE`` on stderr (``--json``: the
error object on stdout) and exits 1; no ``plantd-control`` is exit 4 (docs/errors.md).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from plantd.cli._alarms_cmd import stamp
from plantd.cli._common import OUTPUT_OPTIONS, add_client_options, client_for, emit, refused
from plantd.errors import ServiceError

__all__ = ["CONTROL_SERVICE", "change_lines", "control_tables", "finite_number", "register"]

CONTROL_SERVICE = "org.plantd.Control"
_EXPR_WIDTH = 60


def finite_number(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are no value to write)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def register(sub: Any) -> None:
    control = sub.add_parser(
        "control",
        parents=[OUTPUT_OPTIONS],
        help="the loops, interlocks and calculated points of plantd-control",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_client_options(control, None)
    control.set_defaults(run=_list)
    actions = control.add_subparsers(dest="control_command", metavar="ACTION")
    # SUPPRESS below `control`: a --timeout given before the action is kept.
    listing = actions.add_parser(
        "list", parents=[OUTPUT_OPTIONS], help="loops, interlocks and calculations (default)"
    )
    add_client_options(listing, argparse.SUPPRESS)
    listing.set_defaults(run=_list)

    mode = actions.add_parser("mode", parents=[OUTPUT_OPTIONS], help="put a loop in auto or manual")
    mode.add_argument("loop", metavar="LOOP")
    mode.add_argument("mode", choices=("auto", "manual"))
    mode.add_argument(
        "--output", type=finite_number, metavar="V", help="the output to start from (manual)"
    )
    add_client_options(mode, argparse.SUPPRESS)
    mode.set_defaults(run=_mode)

    setpoint = actions.add_parser("setpoint", parents=[OUTPUT_OPTIONS], help="a loop's setpoint")
    setpoint.add_argument("loop", metavar="LOOP")
    setpoint.add_argument("value", type=finite_number, metavar="V")
    add_client_options(setpoint, argparse.SUPPRESS)
    setpoint.set_defaults(run=_setpoint)

    output = actions.add_parser("output", parents=[OUTPUT_OPTIONS], help="a manual loop's output")
    output.add_argument("loop", metavar="LOOP")
    output.add_argument("value", type=finite_number, metavar="V")
    add_client_options(output, argparse.SUPPRESS)
    output.set_defaults(run=_output)

    reset = actions.add_parser(
        "reset", parents=[OUTPUT_OPTIONS], help="release a tripped interlock (condition gone)"
    )
    reset.add_argument("interlock", metavar="INTERLOCK")
    add_client_options(reset, argparse.SUPPRESS)
    reset.set_defaults(run=_reset)


def _call(args: argparse.Namespace, operation: str, params: dict[str, Any]) -> int:
    """Call ``operation``, print its answer; a refusal is ``plant: CODE: MESSAGE``, exit 1."""
    from plantd.service import call

    try:
        with client_for(args) as client:
            read = operation == "list"
            result = call(client, CONTROL_SERVICE, operation, params, idempotent=read)
    except ServiceError as exc:
        return refused(args, exc)
    now = time.time()
    if operation == "list":
        emit(args, result, control_tables(result, now))
    else:
        emit(args, result, "\n".join(change_lines(result)) or "(nothing changed)")
    return 0


def _list(args: argparse.Namespace) -> int:
    return _call(args, "list", {})


def _mode(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"loop": args.loop, "mode": args.mode}
    if args.output is not None:
        params["output"] = args.output
    return _call(args, "mode", params)


def _setpoint(args: argparse.Namespace) -> int:
    return _call(args, "setpoint", {"loop": args.loop, "value": args.value})


def _output(args: argparse.Namespace) -> int:
    return _call(args, "output", {"loop": args.loop, "value": args.value})


def _reset(args: argparse.Namespace) -> int:
    return _call(args, "reset", {"interlock": args.interlock})


# -- formatting (pure: the service's answer and an explicit now in, text out) -----------------


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _loop_row(loop: Mapping[str, Any], now: float) -> tuple[str, ...]:
    mode = str(loop.get("mode", "?"))
    if loop.get("interlock"):
        mode += f" ({loop['interlock']})"
    elif loop.get("operator_mode") and loop["operator_mode"] != loop.get("mode"):
        mode += f" (set {loop['operator_mode']})"
    pv = _number(loop.get("pv"))
    if loop.get("pv_quality") not in (None, "good"):
        pv += f" ({loop['pv_quality']})"
    setpoint = _number(loop.get("setpoint"))
    working = loop.get("working_setpoint")
    if working is not None and working != loop.get("setpoint"):
        setpoint += f" (now {_number(working)})"
    output = f"{_number(loop.get('output'))} -> {loop.get('output_point', '?')}"
    last = stamp(loop.get("last_write_time"), now)
    if loop.get("last_write_error"):
        last += f" failed: {loop['last_write_error']}"
    return (str(loop.get("name", "")), mode, pv, setpoint, output, last)


def _interlock_row(interlock: Mapping[str, Any], now: float) -> tuple[str, ...]:
    state = str(interlock.get("state", "?"))
    if interlock.get("tripped_at") is not None and state != "normal":
        state += f" since {stamp(interlock['tripped_at'], now)}"
    return (
        str(interlock.get("name", "")),
        state,
        str(interlock.get("output", "")),
        _number(interlock.get("safe_value")),
        f"{interlock.get('reset', '')}: {interlock.get('when', '')}",
    )


def _cut(text: str) -> str:
    return text if len(text) <= _EXPR_WIDTH else text[: _EXPR_WIDTH - 1] + "…"


def _calc_row(calc: Mapping[str, Any]) -> tuple[str, ...]:
    value = _number(calc.get("value"))
    if value != "-" and calc.get("unit"):
        value += f" {calc['unit']}"
    point = str(calc.get("point") or f"calc.{calc.get('name', '')}")
    return (point, value, _cut(str(calc.get("expr", ""))))


def control_tables(answer: Mapping[str, Any], now: float) -> str:
    """``plant control list``: the loops, interlocks and calculations, a table each."""
    sections = []
    loops = answer.get("loops") or []
    if loops:
        sections.append(
            _table(
                ("LOOP", "MODE", "PV", "SETPOINT", "OUTPUT", "LAST WRITE"),
                [_loop_row(loop, now) for loop in loops],
            )
        )
    interlocks = answer.get("interlocks") or []
    if interlocks:
        sections.append(
            _table(
                ("INTERLOCK", "STATE", "OUTPUT", "SAFE VALUE", "RESET: WHEN"),
                [_interlock_row(interlock, now) for interlock in interlocks],
            )
        )
    calcs = answer.get("calc") or []
    if calcs:
        sections.append(
            _table(("CALCULATION", "VALUE", "EXPR"), [_calc_row(calc) for calc in calcs])
        )
    return "\n\n".join(sections) or "(no loops, interlocks or calculations configured)"


def change_lines(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per ``event.control.*`` record a change returned."""
    lines = []
    for event in events:
        text = f"{event.get('kind', '?')} {event.get('name', '?')}: {event.get('transition', '?')}"
        if event.get("kind") == "loop":
            text += (
                f" (mode {event.get('mode')}, setpoint {_number(event.get('setpoint'))}, "
                f"output {_number(event.get('output'))})"
            )
        else:
            text += f" (state {event.get('state')})"
        if event.get("by"):
            text += f" by {event['by']}"
        if event.get("reason"):
            text += f": {event['reason']}"
        lines.append(text)
    return lines
