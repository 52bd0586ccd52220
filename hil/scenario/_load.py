"""Reading a scenario, with its simulator and module files, and checking what refers to what.

Every name a step uses is checked before anything starts — a simulated device and its point, a
module and its point, a fault that fits its device — so a typo fails in a second with the line
of the step, not after a minute of running rig.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hil.scenario._schema import Scenario, split_name
from hil.sim import SimFile, load_sim_file
from plantd.config import KeyPath, parse_dataclass, read_yaml
from plantd.config._location import Locator
from plantd.config._schema import did_you_mean
from plantd.errors import ConfigError

__all__ = ["LoadedScenario", "ModuleInfo", "load_scenario"]


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

    @property
    def name(self) -> str:
        return self.scenario.scenario_name


def load_scenario(path: Path) -> LoadedScenario:
    """Read ``path``; :class:`ConfigError` names every problem (file, line, key)."""
    document = read_yaml(path)
    if document.problems:
        raise ConfigError(list(document.problems))
    scenario = parse_dataclass(
        Scenario, document.data, source=str(path), lines=document.lines, base_dir=path.parent
    )
    scenario = dataclasses.replace(scenario, source=path)
    problems: list[str] = []
    simulators: list[SimFile] = []
    for index, sim_path in enumerate(scenario.simulators):
        if not sim_path.is_file():
            locator = Locator(str(path), document.lines)
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
    if problems:
        raise ConfigError(problems)
    loaded = LoadedScenario(scenario, tuple(simulators), modules)
    locator = Locator(str(path), document.lines)
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
    for sim in loaded.simulators:
        for device in sim.devices:
            if device.name in devices:
                yield ("simulators",), f"two simulators have a device named {device.name!r}"
            devices[device.name] = {p.name for unit in device.units for p in unit.points}
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
        if step.heal is not None and step.heal.device is not None:
            yield from _device(devices, step.heal.device, (*where, "heal", "device"))
        if step.write is not None:
            yield from _module_point(loaded, step.write.point, (*where, "write", "point"))
        if step.expect is not None:
            kind, name = step.expect.target()
            at: KeyPath = (*where, "expect", kind)
            if kind == "device":
                yield from _device_point(devices, name, at)
            else:
                yield from _module_point(loaded, name, at)
            if kind == "stored" and scenario.stack is not None and not scenario.stack.state:
                yield at, "stored values need the state service (stack.state is false)"


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
    if info is None:
        yield at, f"no module {module!r} in stack.modules{did_you_mean(module, loaded.modules)}"
    elif point not in info.points:
        yield at, f"module {module!r} has no point {point!r}{did_you_mean(point, info.points)}"
