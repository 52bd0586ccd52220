"""``plant state …`` against a running broker and state service: human output and ``--json``."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from plantd.cli import main
from tests.conftest import Stack
from tests.integration.state.conftest import start_state

SCOPE = "org.plantd.module.pump1"
WATCH_TWO = ("state", "watch", "--count", "2")


@pytest.fixture
def plant(stack: Stack, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``plant --config DIR ARGS`` in this process; returns (status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main(["--config", str(stack.config_dir), *args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_state_commands(stack: Stack, plant) -> None:  # type: ignore[no-untyped-def]
    stack.start_broker()
    start_state(stack)
    assert plant("state", "scopes") == (0, "(no scopes)\n", "")
    status, out, _ = plant("state", "create-scope", SCOPE)
    assert (status, out) == (0, f"{SCOPE}: created (revision 1)\n")
    status, out, _ = plant("state", "set", SCOPE, "speed", "12.5")
    assert (status, out) == (0, f"{SCOPE} speed: set (revision 2, version 1)\n")
    assert plant("state", "set", SCOPE, "mode", "auto", "--string")[0] == 0
    assert plant("state", "set", SCOPE, "limits", '{"low": 1, "high": [2, 3]}')[0] == 0
    status, out, _ = plant("state", "get", SCOPE, "speed")
    assert (status, out) == (0, "12.5\n")
    status, out, _ = plant("state", "get", SCOPE, "mode", "--json")
    assert json.loads(out) == {
        "scope": SCOPE,
        "key": "mode",
        "value": "auto",
        "revision": 3,
        "version": 1,
    }
    status, out, _ = plant("state", "list", SCOPE, "--values")
    assert out.splitlines()[0].split() == ["KEY", "REVISION", "VALUE"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["limits", "mode", "speed"]
    status, out, _ = plant("--json", "state", "list", SCOPE, "--prefix", "m")
    assert [k["key"] for k in json.loads(out)["keys"]] == ["mode"]
    status, out, _ = plant("state", "scopes")
    assert out.splitlines()[1].split() == [SCOPE, "3", "4"]
    status, out, _ = plant("state", "snapshot", SCOPE, "--json")
    snapshot = json.loads(out)
    assert snapshot["revision"] == 4
    assert snapshot["scopes"][SCOPE]["keys"]["limits"]["value"] == {"low": 1, "high": [2, 3]}
    status, out, _ = plant("state", "health")
    assert status == 0
    assert "status          ok" in out
    status, out, _ = plant("state", "delete", SCOPE, "mode", "--if-revision", "3")
    assert (status, out) == (0, f"{SCOPE} mode: deleted (revision 5)\n")
    status, out, _ = plant("state", "delete-scope", SCOPE)
    assert out == f"{SCOPE}: deleted with 2 key(s) (revision 6)\n"


def test_state_errors(stack: Stack, plant) -> None:  # type: ignore[no-untyped-def]
    stack.start_broker()
    start_state(stack)
    status, out, err = plant("state", "get", SCOPE, "speed")
    assert (status, out) == (1, "")
    assert err == f"plant: state.unknown-scope: no scope '{SCOPE}'\n"
    plant("state", "create-scope", SCOPE)
    plant("state", "set", SCOPE, "k", "1")
    status, out, err = plant("state", "set", SCOPE, "k", "2", "--if-revision", "1", "--json")
    assert status == 1
    assert json.loads(out)["error"]["code"] == "state.conflict"
    status, _, err = plant("state", "set", SCOPE, "k", "not json")
    assert status == 1
    assert "VALUE is not JSON" in err
    assert "--string" in err


def test_watch_prints_each_change_once(stack: Stack, plant) -> None:  # type: ignore[no-untyped-def]
    stack.start_broker()
    start_state(stack)
    plant("state", "create-scope", SCOPE)
    plant("state", "set", SCOPE, "before", "0")
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plantd.cli",
            "--config",
            str(stack.config_dir),
            "state",
            "watch",
            SCOPE,
            "--count",
            "3",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())  # in step with the store
        assert first == {"type": "resync", "revision": 2, "reason": "start"}
        plant("state", "set", SCOPE, "a", "1")
        plant("state", "set", "--string", SCOPE, "b", "two")
        plant("state", "delete", SCOPE, "a")
        out, err = watcher.communicate(timeout=20)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err
    changes = [json.loads(line) for line in out.splitlines()]
    assert [(c["op"], c["key"], c["revision"]) for c in changes] == [
        ("set", "a", 3),
        ("set", "b", 4),
        ("delete", "a", 5),
    ]
    assert changes[1]["value"] == "two"


def test_watch_human_lines(stack: Stack, plant) -> None:  # type: ignore[no-untyped-def]
    stack.start_broker()
    start_state(stack)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "plantd.cli", "--config", str(stack.config_dir), *WATCH_TWO],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("# in step with the store at revision 0")
        time.sleep(0.1)
        plant("state", "create-scope", "s")
        plant("state", "set", "s", "k", "[1, 2]")
        out, _ = watcher.communicate(timeout=20)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert out.splitlines() == ["r1 create-scope s", "r2 set s k = [1, 2] (v1)"]
