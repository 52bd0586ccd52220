"""Reading a scenario, with its simulator and module files, and checking what refers to what.

Every name a step uses is checked before anything starts — a simulated device and its point, a
module and its point, a fault that fits its device — so a typo fails in a second with the line
of the step, not after a minute of running rig. A file with ``parameters`` is expanded first,
one scenario per case, and each case is checked like a file of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hil.scenario._control_files import ControlFiles, load_control_files
from hil.scenario._params import (
    PARAMETERS,
    case_label,
    case_name,
    has_placeholder,
    parameter_cases,
    placeholder_problems,
    substitute,
)
from hil.scenario._schema import Scalar, Scenario, Step, split_name
from hil.sim import SimDevice, SimFile, load_sim_file
from hil.sim._checks import fault_misfits, heal_misfits
from plantd.config import KeyPath, Locator, did_you_mean, parse_dataclass, read_yaml
from plantd.errors import ConfigError

CALC_MODULE = "calc"  # calculated points are calc.NAME (plantd-control's calc.d/)

__all__ = ["LoadedScenario", "ModuleInfo", "load_scenario", "load_scenarios"]


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    path: Path
    device: str | None
    points: frozenset[str]


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    simulators: tuple[SimFile, ...]
    modules: dict[str, ModuleInfo]
    control: ControlFiles | None = None
    """The plan of ``stack.control`` (None without such files)."""

    @property
    def name(self) -> str:
        return self.scenario.scenario_name


def load_scenario(path: Path) -> LoadedScenario:
    """Read ``path``; :class:`ConfigError` names every problem (file, line, key). A file with
    ``parameters`` that expands to several scenarios is refused: use :func:`load_scenarios`."""
    loaded = load_scenarios(path)
    if len(loaded) > 1:
        names = ", ".join(one.name for one in loaded)
        raise ConfigError(
            [
                f"{path}: its parameters make {len(loaded)} scenarios ({names}); "
                "load_scenarios reads them all"
            ]
        )
    return loaded[0]


def load_scenarios(path: Path) -> list[LoadedScenario]:
    """Read ``path``: one scenario, or one per case of its ``parameters`` (see
    :mod:`hil.scenario._params`); :class:`ConfigError` names every problem (file, line, key)."""
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    locator = Locator(str(path), document.lines)
    data = document.data
    if not isinstance(data, dict) or PARAMETERS not in data:
        return [_load_one(path, data, document.lines, None)]
    body = {key: value for key, value in data.items() if key != PARAMETERS}
    cases, problems = parameter_cases(data[PARAMETERS])
    if not problems:
        problems = list(placeholder_problems(body, cases[0].keys()))
    if problems:
        raise ConfigError([locator.problem(key, message) for key, message in problems])
    loaded: list[LoadedScenario] = []
    found: dict[str, list[str]] = {}  # problem → the cases that have it
    for case in cases:
        data_of_case = substitute(body, case)
        if "name" not in body or not has_placeholder(body["name"]):
            data_of_case["name"] = case_name(body.get("name") or path.stem, case)
        try:
            loaded.append(_load_one(path, data_of_case, document.lines, case))
        except ConfigError as exc:
            for problem in exc.problems:
                found.setdefault(problem, []).append(case_label(case))
    if found:
        raise ConfigError(
            [
                problem if len(labels) == len(cases) else f"{problem} (with {'; '.join(labels)})"
                for problem, labels in found.items()
            ]
        )
    names: dict[str, int] = {}
    for index, one in enumerate(loaded):
        if one.name in names:
            problem = (
                f"cases {names[one.name] + 1} and {index + 1} are both named {one.name!r} "
                "(put a parameter in name)"
            )
            raise ConfigError([locator.problem((PARAMETERS, index), problem)])
        names[one.name] = index
    return loaded


def _load_one(
    path: Path, data: object, lines: Mapping[KeyPath, int], case: Mapping[str, Scalar] | None
) -> LoadedScenario:
    """One scenario from its (substituted) data."""
    scenario = parse_dataclass(Scenario, data, source=str(path), lines=lines, base_dir=path.parent)
    scenario = dataclasses.replace(scenario, source=path, parameters=dict(case or {}))
    problems: list[str] = []
    simulators: list[SimFile] = []
    for index, sim_path in enumerate(scenario.simulators):
        if not sim_path.is_file():
            locator = Locator(str(path), lines)
            problems.append(locator.problem(("simulators", index), f"no such file {sim_path}"))
            continue
        try:
            simulators.append(load_sim_file(sim_path))
        except ConfigError as exc:
            problems.extend(exc.problems)
    modules: dict[str, ModuleInfo] = {}
    if scenario.stack is not None:
        for binding in scenario.stack.modules:
            try:
                info = _module_info(binding.file, binding.device)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            modules[info.name] = info
    control: ControlFiles | None = None
    if scenario.stack is not None and scenario.stack.control and not problems:
        points = {name: info.points for name, info in modules.items()}
        try:
            control = load_control_files(scenario.stack.control, points)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    loaded = LoadedScenario(scenario, tuple(simulators), modules, control)
    locator = Locator(str(path), lines)
    problems = [locator.problem(key, message) for key, message in _references(loaded)]
    if problems:
        raise ConfigError(problems)
    return loaded


def _module_info(path: Path, device: str | None) -> ModuleInfo:
    from plantd.module import load_driver, parse_module_file, read_driver_name

    if not path.is_file():
        raise ConfigError([f"{path}: no such module file"])
    driver = load_driver(read_driver_name(path), source=str(path))
    module = parse_module_file(path, driver.config_type)
    points = frozenset(point.name for _, point in module.points())
    return ModuleInfo(module.name, path, device, points)


def _references(loaded: LoadedScenario) -> Iterator[tuple[KeyPath, str]]:
    devices: dict[str, set[str]] = {}
    specs: dict[str, SimDevice] = {}
    for sim in loaded.simulators:
        for device in sim.devices:
            if device.name in devices:
                yield ("simulators",), f"two simulators have a device named {device.name!r}"
            devices[device.name] = {p.name for unit in device.units for p in unit.points}
            specs[device.name] = device
    scenario = loaded.scenario
    if scenario.stack is not None:
        seen: set[str] = set()
        for index, binding in enumerate(scenario.stack.modules):
            name = binding.file.stem
            if name in seen:
                yield ("stack", "modules", index), f"module {name!r} is started twice"
            seen.add(name)
            if binding.device is not None and binding.device not in devices:
                hint = did_you_mean(binding.device, devices)
                yield (
                    ("stack", "modules", index, "device"),
                    f"no simulated device {binding.device!r}{hint}",
                )
    for index, step in enumerate(scenario.steps):
        where: KeyPath = ("steps", index)
        if step.set is not None:
            yield from _device_point(devices, step.set.point, (*where, "set", "point"))
        if step.inject is not None:
            yield from _device(devices, step.inject.device, (*where, "inject", "device"))
            if step.inject.device in specs:
                for key, why in fault_misfits(specs[step.inject.device], step.inject):
                    yield (*where, "inject", *key), why
        if step.heal is not None and step.heal.device is not None:
            yield from _device(devices, step.heal.device, (*where, "heal", "device"))
            if step.heal.device in specs:
                for key, why in heal_misfits(specs[step.heal.device], step.heal):
                    yield (*where, "heal", *key), why
        if step.write is not None:
            yield from _module_point(loaded, step.write.point, (*where, "write", "point"))
        yield from _control_steps(loaded, step, where)
        if step.expect is not None:
            kind, name = step.expect.target()
            at: KeyPath = (*where, "expect", kind)
            if kind == "alarm":
                yield from _control_name(loaded, "alarm", name, at)
            elif kind == "device":
                yield from _device_point(devices, name, at)
            elif kind != "audit":  # an audit record: any the broker writes
                yield from _module_point(loaded, name, at)
            if kind == "stored" and scenario.stack is not None and not scenario.stack.state:
                yield at, "stored values need the state service (stack.state is false)"


def _control_steps(
    loaded: LoadedScenario, step: Step, where: KeyPath
) -> Iterator[tuple[KeyPath, str]]:
    """The alarm, loop or interlock an ``alarm``/``control`` step names."""
    if step.alarm is not None:
        at_alarm: KeyPath = (*where, "alarm", step.alarm.operation)
        yield from _control_name(loaded, "alarm", step.alarm.alarm, at_alarm)
    if step.control is not None:
        kind, name = step.control.target
        at_control: KeyPath = (*where, "control", step.control.operation)
        if kind == "loop":
            at_control = (*at_control, "loop")
        yield from _control_name(loaded, kind, name, at_control)


def _control_name(
    loaded: LoadedScenario, kind: str, name: str, at: KeyPath
) -> Iterator[tuple[KeyPath, str]]:
    """An alarm, loop or interlock of the ``stack.control`` files."""
    if loaded.scenario.stack is None:
        return  # a stack that runs elsewhere (--attach): its plan is not known here
    if loaded.control is None:
        yield at, f"no {kind} {name!r}: the scenario has no stack.control files"
        return
    known = {
        "alarm": loaded.control.alarms,
        "loop": loaded.control.loops,
        "interlock": loaded.control.interlocks,
    }[kind]
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        yield (
            at,
            (
                f"no {kind} {name!r} in stack.control{did_you_mean(name, known)} "
                f"(the {kind}s: {listed})"
            ),
        )


def _device(devices: dict[str, set[str]], name: str, at: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if name not in devices:
        yield at, f"no simulated device {name!r}{did_you_mean(name, devices)}"


def _device_point(
    devices: dict[str, set[str]], text: str, at: KeyPath
) -> Iterator[tuple[KeyPath, str]]:
    parts = split_name(text)
    assert parts is not None  # the schema checked the form
    device, point = parts
    if device not in devices:
        yield at, f"no simulated device {device!r}{did_you_mean(device, devices)}"
    elif point not in devices[device]:
        yield at, f"device {device!r} has no point {point!r}{did_you_mean(point, devices[device])}"


def _module_point(loaded: LoadedScenario, text: str, at: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if loaded.scenario.stack is None:
        return  # a stack that runs elsewhere (--attach): its modules are not known here
    parts = split_name(text)
    assert parts is not None
    module, point = parts
    info = loaded.modules.get(module)
    if module == CALC_MODULE and info is None:
        calcs = loaded.control.calcs if loaded.control is not None else frozenset()
        if point not in calcs:
            hint = did_you_mean(point, calcs)
            yield at, f"no calculation {point!r} in stack.control's calc files{hint}"
        return
    if info is None:
        yield at, f"no module {module!r} in stack.modules{did_you_mean(module, loaded.modules)}"
    elif point not in info.points:
        yield at, f"module {module!r} has no point {point!r}{did_you_mean(point, info.points)}"
