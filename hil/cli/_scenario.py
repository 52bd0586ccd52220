"""``plant hil run SCENARIO…``: run HIL scenarios, print a summary, write JUnit XML and traces.

Without ``--config``, each scenario gets a throwaway stack (free ports, a temporary directory),
so it runs beside a live one; with ``--config DIR`` the stack is started from DIR (its modules as
they are, the simulators on their files' ports); ``--attach`` uses the stack DIR describes,
already running. ``$PLANTD_CONFIG`` is not consulted: a rig is started only where you say.
Exit status: 0 when every scenario passed; 1 when one failed (an expectation not met, a step
that could not be done, a rig that could not be set up or torn down); 2 when a scenario file is
invalid (nothing runs); 130 on Ctrl-C. The JUnit XML is written in every case, and holds a
failure or an error exactly when the status is not 0. Registered through the ``plantd.cli``
entry-point group; :mod:`hil.scenario` is imported inside the run functions, so ``plant``
starts as fast without it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from plantd.cli import CONFIG_ERROR, OUTPUT_OPTIONS, Subcommands, emit
from plantd.errors import ConfigError

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    """Add ``plant hil`` and its actions (the ``plantd.cli`` entry point ``hil``)."""
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
    from hil.scenario import LoadedScenario, load_scenarios
    from plantd.logs import configure_logging

    configure_logging(args.log_level or "warning", "text", under_journal=False)
    if args.attach and not getattr(args, "config", None):
        print("plant: error: --attach needs --config DIR (the stack to use)", file=sys.stderr)
        return 2
    loaded: list[LoadedScenario] = []
    invalid: list[Any] = []
    for path in args.scenarios:  # every file checked before anything starts
        try:
            loaded.extend(load_scenarios(path))  # a parametrised file: a scenario per case
        except ConfigError as exc:
            invalid.append(_not_run(path, "\n".join(exc.problems)))
    if invalid:
        # Nothing runs; the JUnit file says which files are wrong (a CI job that only reads
        # it must fail too), and the exit status is a configuration error's.
        problems = "\n".join(result.setup_error for result in invalid)
        print(f"plant: invalid scenario file:\n{problems}", file=sys.stderr)
        names = ", ".join(result.name for result in invalid)
        verdict = (
            f"HIL: {len(invalid)} of {len(args.scenarios)} scenario file(s) invalid ({names}), "
            "nothing ran — FAILED"
        )
        return _report(args, invalid, CONFIG_ERROR, verdict)
    results: list[Any] = []
    try:
        for index, scenario in enumerate(loaded):
            results.append(_run_one(args, scenario, last=index == len(loaded) - 1))
    except KeyboardInterrupt:
        interrupted = loaded[len(results)]
        results.append(
            _not_run(interrupted.scenario.source, "interrupted (Ctrl-C)", interrupted.name)
        )
        return _report(args, results, 130)
    return _report(args, results, 0 if all(result.passed for result in results) else 1)


def _run_one(args: argparse.Namespace, scenario: Any, *, last: bool) -> Any:
    """Run one scenario (its steps printed as they end) and write its trace: a result whatever
    happens, never an exception (but Ctrl-C)."""
    from hil.scenario import format_step, run_scenario, write_trace
    from hil.scenario._report import verdict_lines
    from hil.scenario._runner import describe_error

    if not args.json:
        print(f"scenario {scenario.name} ({scenario.scenario.source})", flush=True)
    work_dir = None
    if args.work_dir is not None:
        work_dir = args.work_dir / scenario.name
        work_dir.mkdir(parents=True, exist_ok=True)
    config_dir = Path(args.config) if getattr(args, "config", None) else None
    try:
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
    except (Exception, asyncio.CancelledError) as exc:  # run_scenario promises not to; if it
        # broke that promise, this scenario failed, and the others and the report go on
        why = f"the rig crashed: {describe_error(exc)}"
        result = _not_run(scenario.scenario.source, why, scenario.name)
    if args.trace is not None:
        try:
            written = write_trace(result, args.trace, png=args.png)
        except OSError as exc:
            result.teardown_errors.append(f"writing the trace to {args.trace}: {exc}")
        else:
            result.artifacts.extend(written)
    if not args.json:
        print("\n".join(verdict_lines(result)))
        for path in result.artifacts:
            print(f"  trace: {path}")
        if not last:
            print()
    return result


def _not_run(source: Path | None, why: str, name: str | None = None) -> Any:
    """The result of a scenario that could not run at all: its ``setup`` says why."""
    from hil.scenario import ScenarioResult

    name = name or (source.stem if source is not None else "scenario")
    return ScenarioResult(name, source, time.time(), setup_error=why)


def _report(
    args: argparse.Namespace, results: list[Any], status: int, verdict: str | None = None
) -> int:
    """JUnit XML, JSON or the overall verdict, a paragraph on stderr for each scenario whose
    rig failed, and ``status`` — unless the JUnit file cannot be written (then 1: the exit
    status must not claim what no file shows)."""
    from hil.scenario import write_junit
    from hil.scenario._report import overall_verdict

    for result in results:
        if result.setup_error is not None and status != CONFIG_ERROR:
            print(
                f"plant: scenario {result.name}: setup failed: {result.setup_error}",
                file=sys.stderr,
            )
        for error in result.teardown_errors:
            print(f"plant: scenario {result.name}: teardown failed: {error}", file=sys.stderr)
    if args.junit is not None:
        try:
            write_junit(results, args.junit)
        except OSError as exc:
            print(
                f"plant: error: cannot write the JUnit XML to {args.junit}: {exc}", file=sys.stderr
            )
            status = status or 1
        else:
            if not args.json:
                print(f"JUnit XML: {args.junit}")
    if args.json:
        emit(args, [_as_json(result) for result in results], "")
    else:
        print(verdict or overall_verdict(results))
    return status


def _check(args: argparse.Namespace) -> int:
    from hil.scenario import load_scenarios

    checked: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in args.scenarios:
        try:
            cases = load_scenarios(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        checked.extend(
            {"file": str(path), "name": one.name, "steps": len(one.scenario.steps)} for one in cases
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
        "teardown_errors": list(result.teardown_errors),
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
