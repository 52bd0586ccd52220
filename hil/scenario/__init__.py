"""HIL scenarios: simulators, a plantd stack, timed steps, expectations, and reports.

    from hil.scenario import load_scenario, run_scenario, summary, write_junit

    loaded = load_scenario(Path("hil/scenarios/closed-loop.yaml"))
    result = await run_scenario(loaded)              # or run_scenario_sync(loaded)
    print(summary(result))
    write_junit([result], Path("report.xml")); write_trace(result, Path("trace/"))

From a shell: ``plant hil run SCENARIO.yaml [--junit FILE] [--trace DIR] [--config DIR]``.
The file format is in :mod:`hil.scenario._schema` and ``docs/hil.md``. Inside:

    _schema   the scenario file's dataclasses
    _control_steps  alarm and control steps (plantd-control), audit record matches
    _control_files  stack.control: plantd-control's files, placed and checked
    _load     reading it with its simulator and module files; names checked across them
    _params   parametrised files: one scenario per case of ``parameters``
    _stack    the plantd processes (throwaway, from a config directory, or attached)
    _observe  the bus recorder (samples, alarm events, audit records) and the probes
    _expect   expectations: within, hold, fresh, windows (rising, stable…); what failed and why
    _runner   the run: simulators, stack, steps, teardown
    _trace    what was seen over time; CSV
    _html     the trace as a page of inline SVG plots (and a PNG if matplotlib is there)
    _report   the human summary and JUnit XML
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from hil.scenario._html import write_html, write_png
from hil.scenario._load import LoadedScenario, load_scenario, load_scenarios
from hil.scenario._report import format_step, summary, write_junit
from hil.scenario._result import ScenarioResult, StepResult
from hil.scenario._runner import run_scenario
from hil.scenario._schema import Expect, Scenario, Step
from hil.scenario._trace import Trace, write_csv

__all__ = [
    "Expect",
    "LoadedScenario",
    "Scenario",
    "ScenarioResult",
    "Step",
    "StepResult",
    "Trace",
    "format_step",
    "load_scenario",
    "load_scenarios",
    "run_scenario",
    "run_scenario_sync",
    "summary",
    "write_csv",
    "write_html",
    "write_junit",
    "write_png",
    "write_trace",
]


def run_scenario_sync(
    loaded: LoadedScenario,
    *,
    config_dir: Path | None = None,
    attach: bool = False,
    work_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ScenarioResult:
    """:func:`run_scenario` in a fresh event loop, for code that is not asyncio."""
    return asyncio.run(
        run_scenario(loaded, config_dir=config_dir, attach=attach, work_dir=work_dir, env=env)
    )


def write_trace(result: ScenarioResult, directory: Path, *, png: bool = False) -> list[Path]:
    """``NAME.csv`` and ``NAME.html`` (and ``NAME.png`` if asked and matplotlib is installed)
    in ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / f"{result.name}.csv", directory / f"{result.name}.html"]
    write_csv(result.trace, written[0])
    write_html(result, written[1])
    if png and write_png(result, directory / f"{result.name}.png"):
        written.append(directory / f"{result.name}.png")
    return written
