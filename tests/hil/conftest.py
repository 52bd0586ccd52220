"""The HIL rig's tests use its own pytest plugin (a project of yours would write
``pytest_plugins = ["hil.pytest_plugin"]`` in its top-level conftest instead)."""

from __future__ import annotations

from pathlib import Path

from hil.pytest_plugin import (  # noqa: F401  (fixtures and a hook, registered by being here)
    hil_loop,
    hil_scenario,
    hil_sim,
    hil_stack,
    pytest_runtest_makereport,
)

ROOT = Path(__file__).resolve().parents[2]
PLANT = ROOT / "hil" / "plants" / "pump-station.yaml"
SCENARIOS = ROOT / "hil" / "scenarios"
LOCAL_MODULES = ROOT / "config" / "local" / "modules.d"
