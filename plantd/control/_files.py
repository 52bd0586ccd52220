"""Reading ``calc.d/``, ``alarms.d/`` and ``control.d/``: the plan ``plantd-control`` runs.

Each directory holds any number of ``*.yaml`` files (hidden files are editors' and ignored; a
``.yml`` file is a problem, since it would be ignored). Every file is read with
``parse_dataclass``, so each wrong key is named with its file and line; then the rules that
span files are checked:

- names are unique per kind (two alarms, calcs, loops or interlocks of one name: both files
  are named);
- ``calc.NAME`` read anywhere (an alarm's point, a loop's measurement, any expression) is a
  calculation that exists;
- with ``modules`` given (``plant config check`` passes the modules of ``modules.d/`` and
  their points), every other point is a point of a module that exists. The process itself
  does not ask: a HIL rig runs modules from files elsewhere, and a point that never comes is
  shown as never seen.

Every problem is collected and raised as one :class:`ConfigError`, like plantd.yaml's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from plantd.config import did_you_mean, parse_dataclass, read_yaml
from plantd.control._alarm_config import AlarmConfig, AlarmsFile
from plantd.control._calc_config import CalcConfig, CalcFile
from plantd.control._expr import compile_expression
from plantd.control._loop_config import ControlFile, InterlockConfig, LoopConfig
from plantd.errors import ConfigError

__all__ = ["ALARMS_DIR", "CALC_DIR", "CONTROL_DIR", "ControlPlan", "check_plan", "load_plan"]

CALC_DIR, ALARMS_DIR, CONTROL_DIR = "calc.d", "alarms.d", "control.d"
CALC_MODULE = "calc"  # calculated points are calc.NAME, on data.calc.NAME

F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class ControlPlan:
    """Everything ``plantd-control`` runs, from every file, checked."""

    calcs: tuple[CalcConfig, ...] = ()
    alarms: tuple[AlarmConfig, ...] = ()
    loops: tuple[LoopConfig, ...] = ()
    interlocks: tuple[InterlockConfig, ...] = ()
    files: tuple[Path, ...] = ()
    sources: Mapping[str, Path] = field(default_factory=dict)  # "alarm 'x'" -> its file

    @property
    def empty(self) -> bool:
        return not (self.calcs or self.alarms or self.loops or self.interlocks)

    def points_read(self) -> Iterator[tuple[str, str]]:
        """Every point the plan reads, with what reads it (for the cross-file checks)."""
        for calc in self.calcs:
            for point in compile_expression(calc.expr).inputs:
                yield point, f"calc {calc.name!r}"
        for alarm in self.alarms:
            yield alarm.point, f"alarm {alarm.name!r}"
            if isinstance(alarm.setpoint, str):
                yield alarm.setpoint, f"alarm {alarm.name!r} (setpoint)"
            if alarm.suppress_when:
                for point in compile_expression(alarm.suppress_when).inputs:
                    yield point, f"alarm {alarm.name!r} (suppress_when)"
        for loop in self.loops:
            yield loop.measurement, f"loop {loop.name!r}"
        for interlock in self.interlocks:
            for point in compile_expression(interlock.when).inputs:
                yield point, f"interlock {interlock.name!r}"

    def points_written(self) -> Iterator[tuple[str, str]]:
        """Every point the plan's loops and interlocks write, with who writes it."""
        for loop in self.loops:
            yield loop.output, f"loop {loop.name!r}"
        for interlock in self.interlocks:
            yield interlock.output, f"interlock {interlock.name!r}"


Modules = Mapping[str, Collection[str]]  # module name -> its point names


def load_plan(config_dir: Path | None, *, modules: Modules | None = None) -> ControlPlan:
    """The plan in ``config_dir`` (an empty one without it); ConfigError lists every problem."""
    plan, problems = _read(config_dir, modules)
    if problems:
        raise ConfigError(problems)
    return plan


def check_plan(config_dir: Path, *, modules: Modules | None = None) -> tuple[list[Path], list[str]]:
    """The plan's files under ``config_dir`` and every problem with them (``config check``)."""
    plan, problems = _read(config_dir, modules)
    return list(plan.files), problems


def _read(config_dir: Path | None, modules: Modules | None) -> tuple[ControlPlan, list[str]]:
    if config_dir is None:
        return ControlPlan(), []
    problems: list[str] = []
    files: list[Path] = []
    calcs: list[tuple[CalcConfig, Path]] = []
    alarms: list[tuple[AlarmConfig, Path]] = []
    loops: list[tuple[LoopConfig, Path]] = []
    interlocks: list[tuple[InterlockConfig, Path]] = []
    for path, calc_file in _each(config_dir / CALC_DIR, CalcFile, problems, files):
        calcs.extend((calc, path) for calc in calc_file.calc)
    for path, alarms_file in _each(config_dir / ALARMS_DIR, AlarmsFile, problems, files):
        alarms.extend((alarm, path) for alarm in alarms_file.alarms)
    for path, control_file in _each(config_dir / CONTROL_DIR, ControlFile, problems, files):
        loops.extend((loop, path) for loop in control_file.loops)
        interlocks.extend((interlock, path) for interlock in control_file.interlocks)
    for kind, entries in (
        ("calc", calcs),
        ("alarm", alarms),
        ("loop", loops),
        ("interlock", interlocks),
    ):
        problems.extend(_duplicates(kind, entries))
    plan = ControlPlan(
        calcs=tuple(calc for calc, _ in calcs),
        alarms=tuple(alarm for alarm, _ in alarms),
        loops=tuple(loop for loop, _ in loops),
        interlocks=tuple(interlock for interlock, _ in interlocks),
        files=tuple(files),
        sources={
            f"{kind} {entry.name!r}": path
            for kind, entries in (
                ("calc", calcs),
                ("alarm", alarms),
                ("loop", loops),
                ("interlock", interlocks),
            )
            for entry, path in entries
        },
    )
    if not problems:
        problems.extend(_references(plan, modules))
    return plan, problems


def _each(
    directory: Path, cls: type[F], problems: list[str], files: list[Path]
) -> Iterator[tuple[Path, F]]:
    if not directory.is_dir():
        return
    visible = sorted(path for path in directory.iterdir() if not path.name.startswith("."))
    for path in visible:
        if path.suffix == ".yml":
            problems.append(f"{path}: ignored: files in {directory.name}/ must end in .yaml")
            continue
        if path.suffix != ".yaml" or not path.is_file():
            continue
        files.append(path)
        try:
            document = read_yaml(path)
            problems.extend(document.problems)
            yield path, parse_dataclass(cls, document.data, source=str(path), lines=document.lines)
        except ConfigError as exc:
            problems.extend(exc.problems)


def _duplicates(kind: str, entries: list[tuple[Any, Path]]) -> Iterator[str]:
    seen: dict[str, Path] = {}
    for entry, path in entries:
        name = entry.name
        if name in seen:
            yield f"{path}: {kind} {name!r} is defined twice (also in {seen[name]})"
        else:
            seen[name] = path


def _references(plan: ControlPlan, modules: Modules | None) -> Iterator[str]:
    calcs = {calc.name for calc in plan.calcs}
    for point, what in plan.points_read():
        reader = _placed(plan, what, what.partition(" (")[0])
        module, _, name = point.partition(".")
        if module == CALC_MODULE:
            if name not in calcs:
                yield f"{reader} reads {point!r}, but there is no calculation {name!r} in calc.d/"
        elif modules is not None:
            yield from _known(point, modules, f"{reader} reads")
    for point, what in plan.points_written():
        writer = _placed(plan, what, what)
        module = point.partition(".")[0]
        if module == CALC_MODULE:
            yield f"{writer} writes {point!r}: a calculated point cannot be written"
        elif modules is not None:
            yield from _known(point, modules, f"{writer} writes")


def _placed(plan: ControlPlan, text: str, entry: str) -> str:
    """``text`` prefixed with the file that defines ``entry`` ("alarm 'x'")."""
    where = plan.sources.get(entry)
    return f"{where}: {text}" if where else text


def _known(point: str, modules: Modules, who: str) -> Iterator[str]:
    module, _, name = point.partition(".")
    points = modules.get(module)
    if points is None:
        yield f"{who} {point!r}, but there is no module {module!r} in modules.d/"
    elif name not in points:
        hint = did_you_mean(name, points)
        yield f"{who} {point!r}, but module {module!r} has no point {name!r}{hint}"
