"""``plant reload`` without a stack: who it hands the changes to (systemd, plant up, nobody),
what it prints, and its exit status. The plant up it finds is this test holding the lock; the
real one is in tests/integration/test_up_hotplug.py."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plantd.cli import _reload_cmd, main
from plantd.reconfigure import APPLIED_FILE, Plan, Snapshot, snapshot
from tests.conftest import Stack, make_stack

PUMP = "driver: fake\ngroups:\n  - name: main\n    interval: 1s\n    points: [{name: n}]\n"
BAD = "driver: fake\ngroups: 42\n"


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    stack = make_stack(tmp_path, security={"mode": "none"})
    (stack.config_dir / "modules.d").mkdir()
    (stack.config_dir / "modules.d/keep.yaml").write_text(PUMP)
    run = Path(stack.settings["paths"]["run"])
    snapshot(stack.config_dir.absolute()).save(run / APPLIED_FILE)  # what "runs" now
    Path(stack.settings["paths"]["data"]).mkdir(parents=True)
    return stack


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(systemd_manages=lambda config: False)
    monkeypatch.setitem(sys.modules, "plantd.cli._reload_systemd", fake)


@pytest.fixture
def plant_up(stack: Stack, no_systemd: None) -> Iterator[int]:
    """This process, as a plant up that holds the lock (flock: another open file is refused)."""
    lock = Path(stack.settings["paths"]["data"]) / "plant-up.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    yield 4242
    os.close(fd)


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(_reload_cmd.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    return sent


def reload(stack: Stack, *args: str) -> int:
    return main(["--config", str(stack.config_dir), "reload", *args])


def test_with_nothing_running_it_exits_1(
    stack: Stack, no_systemd: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack.config_dir / "modules.d/extra.yaml").write_text(PUMP)
    assert reload(stack) == 1
    _, err = capsys.readouterr()
    assert (
        f"plant reload: nothing runs the configuration in {stack.config_dir.absolute()} "
        "(start it with plant up or systemctl start plantd.target)"
    ) in err


def test_a_lock_file_nobody_holds_is_nothing_running(
    stack: Stack, no_systemd: None, kills: list[tuple[int, int]]
) -> None:
    (Path(stack.settings["paths"]["data"]) / "plant-up.lock").write_text("4242\n")  # left over
    assert reload(stack) == 1
    assert kills == []


def test_it_prints_the_plan_and_sends_plant_up_sighup(
    stack: Stack, plant_up: int, kills: list[tuple[int, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    (stack.config_dir / "modules.d/extra.yaml").write_text(PUMP)
    assert reload(stack) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "module extra: added (module host)",
        f"sent SIGHUP to plant up (pid {plant_up}), which applies it",
    ]
    assert err == ""
    assert kills == [(plant_up, 1)]


def test_check_says_what_would_change_and_sends_nothing(
    stack: Stack, plant_up: int, kills: list[tuple[int, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    (stack.config_dir / "modules.d/keep.yaml").unlink()
    assert reload(stack, "--check") == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "module keep: removed (module host)",
        f"(--check: nothing applied; plant up, pid {plant_up}, runs it)",
    ]
    assert kills == []


def test_a_bad_file_is_refused_the_others_applied_and_it_exits_2(
    stack: Stack, plant_up: int, kills: list[tuple[int, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    (stack.config_dir / "modules.d/bad.yaml").write_text(BAD)
    (stack.config_dir / "modules.d/keep.yaml").write_text(BAD)  # it ran: it keeps running
    (stack.config_dir / "modules.d/extra.yaml").write_text(PUMP)
    assert reload(stack) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "module extra: added (module host)",
        f"sent SIGHUP to plant up (pid {plant_up}), which applies it",
    ]
    lines = err.splitlines()
    assert "plant reload: refused modules.d/bad.yaml (not started):" in lines
    assert "plant reload: refused modules.d/keep.yaml (the running one keeps running):" in lines
    assert any(
        line.startswith(f"  {stack.config_dir.absolute()}/modules.d/bad.yaml:2: ") for line in lines
    )
    assert kills == [(plant_up, 1)]


def test_json(
    stack: Stack, plant_up: int, kills: list[tuple[int, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    (stack.config_dir / "modules.d/bad.yaml").write_text(BAD)
    assert reload(stack, "--json", "--check") == 2
    report = json.loads(capsys.readouterr().out)
    assert report["changes"] == []
    assert list(report["refused"]) == [str(stack.config_dir.absolute() / "modules.d/bad.yaml")]
    assert report["applied_by"] is None  # --check


def test_under_systemd_it_hands_the_plan_to_the_appliance_side(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Plan, Snapshot, Snapshot]] = []

    def apply_systemd(config: Any, plan: Plan, new: Snapshot, *, seen: Snapshot) -> list[str]:
        calls.append((plan, new, seen))
        return ["systemctl start plantd-module@extra.service"]

    fake = SimpleNamespace(systemd_manages=lambda config: True, apply_systemd=apply_systemd)
    monkeypatch.setitem(sys.modules, "plantd.cli._reload_systemd", fake)
    (stack.config_dir / "modules.d/extra.yaml").write_text(PUMP + "isolated: true\n")
    (stack.config_dir / "modules.d/bad.yaml").write_text(BAD)
    assert reload(stack) == 2
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "module extra: added (own process)",
        "systemctl start plantd-module@extra.service",
    ]
    [(plan, new, seen)] = calls
    assert plan.added["module"] == ["extra"]
    assert sorted(name for _, name in new.entries) == ["extra", "keep"]  # not the refused one
    assert sorted(name for _, name in seen.entries) == ["bad", "extra", "keep"]  # what was read


def test_a_failed_systemctl_is_exit_1(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def apply_systemd(config: Any, plan: Plan, new: Snapshot, *, seen: Snapshot) -> list[str]:
        return ["failed: systemctl start plantd-sink@s.service: exit 1"]

    fake = SimpleNamespace(systemd_manages=lambda config: True, apply_systemd=apply_systemd)
    monkeypatch.setitem(sys.modules, "plantd.cli._reload_systemd", fake)
    (stack.config_dir / "modules.d/extra.yaml").write_text(PUMP)
    assert reload(stack) == 1
    assert "failed: systemctl start plantd-sink@s.service" in capsys.readouterr().out


def test_the_real_appliance_side_says_a_checkout_is_not_its_own(stack: Stack) -> None:
    from plantd.cli._reload_systemd import systemd_manages
    from plantd.config import load_config

    assert not systemd_manages(load_config(stack.config_dir))  # not /etc/plantd
