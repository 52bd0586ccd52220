"""The HIL packages' public surface is deliberate, and `plant` does not import them to start."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PUBLIC = {
    "hil.sim": [
        "SERVICE_PREFIX", "ExprError", "Fault", "FaultKind", "Heal", "Plant", "SimDevice",
        "SimError", "SimFile", "SimPoint", "SimRunner", "SimUnit", "load_sim_file", "parse_expr",
        "sim_from_module", "sim_point_name", "sim_service",
    ],
    "hil.scenario": [
        "Expect", "LoadedScenario", "Scenario", "ScenarioResult", "Step", "StepResult", "Trace",
        "format_step", "load_scenario", "load_scenarios", "run_scenario", "run_scenario_sync",
        "summary", "write_csv", "write_html", "write_junit", "write_png", "write_trace",
    ],
    "hil.pytest_plugin": [
        "HilStack", "LoopThread", "SimHandle", "hil_scenario", "hil_sim", "hil_stack",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exports_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_plant_starts_without_the_rig() -> None:
    code = (
        "import sys; from plantd.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('hil.sim', 'hil.scenario'))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert run.stdout.strip() == "[]"
