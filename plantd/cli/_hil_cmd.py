"""``plant hil run SCENARIO…``: run HIL scenarios, print a summary, write JUnit XML and traces.

Without ``--config``, each scenario gets a throwaway stack (free ports, a temporary directory),
so it runs beside a live one; with ``--config DIR`` the stack is started from DIR (its modules as
they are, the simulators on their files' ports); ``--attach`` uses the stack DIR describes,
already running. ``$PLANTD_CONFIG`` is not consulted: a rig is started only where you say.
Exit status 0 when every scenario passed, 1 otherwise. ``hil`` is imported inside the run
function, so ``plant`` starts as fast without it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, emit
from plantd.errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    hil = sub.add_parser("hil", help="hardware-in-the-loop scenarios")
    actions = hil.add_subparsers(dest="hil_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[OUTPUT_OPTIONS], help="run scenario files")
    run.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO")
    run.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    run.add_argument("--trace", type=Path, metavar="DIR", help="write NAME.csv and NAME.html here")
    run.add_argument("--png", action="store_true", help="also NAME.png (needs matplotlib)")
    run.add_argument(
        "--config",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="start the plantd stack from DIR (default: a throwaway stack per scenario)",
    )
    run.add_argument(
        "--attach", action="store_true", help="use the stack --config DIR describes, running"
    )
    run.add_argument(
        "--work-dir", type=Path, metavar="DIR", help="keep configs and logs here (default: temp)"
    )
    run.set_defaults(run=_run)
    check = actions.add_parser("check", parents=[OUTPUT_OPTIONS], help="validate scenario files")
    check.add_argument("scenarios", nargs="+", type=Path, metavar="SCENARIO")
    check.set_defaults(run=_check)


def _run(args: argparse.Namespace) -> int:
    from hil.scenario import (
        format_step,
        load_scenario,
        run_scenario,
        summary,
        write_junit,
        write_trace,
    )
    from plantd.logs import configure_logging

    configure_logging(args.log_level or "warning", "text", under_journal=False)
    config_dir = Path(args.config) if args.config else None
    if args.attach and config_dir is None:
        print("plant: error: --attach needs --config DIR (the stack to use)", file=sys.stderr)
        return 2
    loaded = [load_scenario(path) for path in args.scenarios]  # every file checked first
    results = []
    for index, scenario in enumerate(loaded):
        if not args.json:
            print(f"scenario {scenario.name} ({scenario.scenario.source})", flush=True)
        work_dir = None
        if args.work_dir is not None:
            work_dir = args.work_dir / scenario.name
            work_dir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(
            run_scenario(
                scenario,
                config_dir=config_dir,
                attach=args.attach,
                work_dir=work_dir,
                env=args.environ,
                progress=None if args.json else lambda step: print(format_step(step), flush=True),
            )
        )
        results.append(result)
        if not args.json:
            print(summary(result).splitlines()[-1] + ("\n" if index < len(loaded) - 1 else ""))
            if result.setup_error:
                print(f"  setup: {result.setup_error}")
        if args.trace is not None:
            for path in write_trace(result, args.trace, png=args.png):
                if not args.json:
                    print(f"  trace: {path}")
    if args.junit is not None:
        write_junit(results, args.junit)
        if not args.json:
            print(f"JUnit XML: {args.junit}")
    if args.json:
        emit(args, [_as_json(result) for result in results], "")
    return 0 if all(result.passed for result in results) else 1


def _check(args: argparse.Namespace) -> int:
    from hil.scenario import load_scenario

    checked, problems = [], []
    for path in args.scenarios:
        try:
            loaded = load_scenario(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        checked.append(
            {"file": str(path), "name": loaded.name, "steps": len(loaded.scenario.steps)}
        )
    if problems:  # a report, like `plant config check`: every problem, exit 1
        print("\n".join(problems), file=sys.stderr)
        return 1
    emit(args, checked, "\n".join(f"{c['file']}: ok ({c['steps']} steps)" for c in checked))
    return 0


def _as_json(result: Any) -> dict[str, Any]:
    return {
        "name": result.name,
        "source": str(result.source),
        "passed": result.passed,
        "duration": round(result.duration, 3),
        "setup_error": result.setup_error,
        "steps": [
            {
                "index": step.index,
                "action": step.action,
                "description": step.description,
                "t": round(step.t, 3),
                "status": step.status,
                "message": step.message,
            }
            for step in result.steps
        ],
    }
