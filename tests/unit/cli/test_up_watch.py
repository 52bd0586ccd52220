"""plant up's file watch (plantd.cli._watch) with children that are not processes: which child
each change starts, stops or signals, what is refused, and what is saved as applied."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from plantd.cli import _watch
from plantd.cli._watch import HOST, Watch, catches_sighup
from plantd.reconfigure import APPLIED_FILE, Snapshot, snapshot

PUMP = "driver: fake\ngroups:\n  - name: main\n    interval: 1s\n    points: [{name: n}]\n"
ALONE = PUMP + "isolated: true\n"
BAD = "driver: fake\ngroups: 42\n"


@dataclass
class FakeChild:
    """A child whose process runs (once started) and notes each SIGHUP, under its name then."""

    name: str
    hangups: list[str]
    process: FakeChild | None = None
    stopped_because: str | None = None
    starts: int = 0
    pid: int = 0

    def start(self) -> None:
        self.starts += 1
        self.process = self  # it is its own process: poll() and send_signal()

    def poll(self) -> int | None:
        return None

    def send_signal(self, sig: int) -> None:
        assert sig == signal.SIGHUP
        self.hangups.append(self.name)


@dataclass
class Harness:
    config_dir: Path
    watch: Watch[FakeChild]
    out: io.StringIO
    err: io.StringIO
    stopped: list[str]
    hangups: list[str]
    starting: set[int]
    keys: list[str]
    now: float = 0.0

    def write(self, relative: str, text: str) -> None:
        path = self.config_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def look(self) -> None:
        self.now += 1.0
        self.watch.tick(self.now)

    @property
    def children(self) -> dict[str, FakeChild]:
        return self.watch.children


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    config_dir = tmp_path / "etc"
    (config_dir / "modules.d").mkdir(parents=True)
    (config_dir / "modules.d/keep.yaml").write_text(PUMP)
    hangups: list[str] = []
    stopped: list[str] = []
    starting: set[int] = set()  # pids of processes without a SIGHUP handler yet
    keys: list[str] = []  # each time the keys of new modules and sinks were made
    children = {"broker": FakeChild("broker", hangups), HOST: FakeChild("modules keep", hangups)}
    for child in children.values():
        child.start()
    out, err = io.StringIO(), io.StringIO()

    def make(key: str, names: list[str]) -> FakeChild:
        return FakeChild(" ".join(["modules", *names]) if key == HOST else key, hangups)

    watch = Watch(
        config_dir,
        tmp_path / "run",
        children,
        make,
        applied=snapshot(config_dir),
        environ={},
        stop=lambda child: stopped.append(child.name),
        ready=lambda pid: pid not in starting,
        before_start=lambda: keys.append("made"),
        out=out,
        err=err,
    )
    return Harness(config_dir, watch, out, err, stopped, hangups, starting, keys)


def test_a_hosted_module_added_signals_the_host_and_nothing_else(harness: Harness) -> None:
    harness.write("modules.d/extra.yaml", PUMP)
    harness.look()
    assert harness.hangups == ["modules extra keep"]
    assert harness.stopped == []
    assert harness.out.getvalue() == "plant up: module extra: added (module host)\n"
    saved = Snapshot.load(harness.watch.applied_file)
    assert saved is not None
    assert sorted(name for _, name in saved.entries) == ["extra", "keep"]


def test_nothing_new_is_no_action(harness: Harness) -> None:
    (harness.config_dir / "modules.d/keep.yaml").write_text(PUMP)  # a touch
    harness.look()
    harness.look()
    assert (harness.hangups, harness.stopped, harness.out.getvalue()) == ([], [], "")


def test_the_watch_looks_only_when_it_is_time_or_woken(harness: Harness) -> None:
    harness.write("modules.d/extra.yaml", PUMP)
    harness.watch.tick(0.0)  # the first look
    harness.write("modules.d/other.yaml", PUMP)
    harness.watch.tick(0.1)  # too soon: not looked
    assert harness.hangups == ["modules extra keep"]
    harness.watch.wake()  # SIGHUP
    harness.watch.tick(0.2)
    assert harness.hangups == ["modules extra keep", "modules extra keep other"]


def test_isolated_modules_get_their_own_child(harness: Harness) -> None:
    harness.write("modules.d/alone.yaml", ALONE)
    harness.look()
    first = harness.children["module alone"]
    assert first.starts == 1
    harness.write("modules.d/alone.yaml", ALONE + "# changed\n")
    harness.look()
    assert harness.stopped == ["module alone"]
    assert harness.children["module alone"] is not first
    assert harness.children["module alone"].starts == 1
    (harness.config_dir / "modules.d/alone.yaml").unlink()
    harness.look()
    assert harness.stopped == ["module alone", "module alone"]
    assert "module alone" not in harness.children
    assert harness.hangups == []  # the host was not concerned


def test_the_host_is_stopped_with_its_last_module_and_started_with_a_first(
    harness: Harness,
) -> None:
    (harness.config_dir / "modules.d/keep.yaml").unlink()
    harness.look()
    assert harness.stopped == ["modules keep"]
    assert HOST not in harness.children
    harness.write("modules.d/again.yaml", PUMP)
    harness.look()
    assert harness.children[HOST].name == "modules again"
    assert harness.children[HOST].starts == 1


def test_a_module_that_goes_isolated_leaves_the_host(harness: Harness) -> None:
    harness.write("modules.d/extra.yaml", PUMP)
    harness.look()
    harness.write("modules.d/extra.yaml", ALONE)
    harness.look()
    assert harness.hangups == ["modules extra keep", "modules keep"]
    assert harness.children["module extra"].starts == 1


def test_sinks_are_started_restarted_and_stopped(harness: Harness) -> None:
    sink = "type: mqtt\nmqtt: {host: 127.0.0.1}\n"
    harness.write("sinks.d/cloud.yaml", sink)
    harness.look()
    assert harness.err.getvalue() == ""
    assert harness.children["sink cloud"].starts == 1
    harness.write("sinks.d/cloud.yaml", sink + "# changed\n")
    harness.look()
    if _watch._SINKS_RELOAD:
        assert harness.stopped == []
    else:
        assert harness.stopped == ["sink cloud"]
    (harness.config_dir / "sinks.d/cloud.yaml").unlink()
    harness.look()
    assert "sink cloud" not in harness.children


def test_a_bad_file_is_refused_once_and_the_rest_applied(harness: Harness) -> None:
    harness.write("modules.d/bad.yaml", BAD)
    harness.write("modules.d/alone.yaml", ALONE)
    harness.look()
    harness.look()  # the same files: not said again
    lines = harness.err.getvalue().splitlines()
    assert lines[0] == "plant up: refused modules.d/bad.yaml (not started):"
    assert lines[1].startswith(f"  {harness.config_dir}/modules.d/bad.yaml:2: ")
    assert sum(line.startswith("plant up: refused") for line in lines) == 1
    assert harness.out.getvalue() == "plant up: module alone: added (own process)\n"
    assert harness.hangups == []  # the host's modules did not change
    saved = Snapshot.load(harness.watch.applied_file)
    assert saved is not None
    assert ("module", "bad") not in saved.entries
    harness.watch.wake()  # plant reload: looked at again, said again
    harness.look()
    assert harness.err.getvalue().count("plant up: refused modules.d/bad.yaml") == 2


def test_a_changed_file_refused_keeps_the_running_one(harness: Harness) -> None:
    before = harness.watch.applied.entries[("module", "keep")]
    harness.write("modules.d/keep.yaml", BAD)
    harness.look()
    assert harness.err.getvalue().startswith(
        "plant up: refused modules.d/keep.yaml (the running one keeps running):\n"
    )
    assert harness.hangups == []
    assert harness.watch.applied.entries[("module", "keep")] == before
    harness.write("modules.d/keep.yaml", PUMP + "# fixed\n")
    harness.look()
    assert harness.hangups == ["modules keep"]


def test_the_applied_snapshot_is_saved_from_the_start(harness: Harness) -> None:
    saved = Snapshot.load(harness.watch.applied_file)
    assert saved == harness.watch.applied
    assert harness.watch.applied_file.name == APPLIED_FILE


def test_a_child_still_starting_gets_its_sighup_once_it_can_take_it(harness: Harness) -> None:
    harness.starting.add(harness.children[HOST].pid)  # SIGHUP now would end it
    harness.write("modules.d/extra.yaml", PUMP)
    harness.look()
    harness.look()
    assert harness.hangups == []
    harness.starting.clear()  # its handler is in place
    harness.watch.tick(harness.now)  # not a look: the pending signal alone
    assert harness.hangups == ["modules extra keep"]
    harness.look()
    assert harness.hangups == ["modules extra keep"]  # once


def test_sighup_is_caught_by_a_python_that_set_a_handler() -> None:
    code = (
        "import signal,time;signal.signal(signal.SIGHUP, print); print(flush=True); time.sleep(9)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        process.stdout.readline()  # the handler is set
        assert catches_sighup(process.pid)
        process.kill()
    with subprocess.Popen(["sleep", "30"]) as process:
        assert not catches_sighup(process.pid)
        process.kill()


def test_keys_are_made_before_anything_new_starts_and_only_then(harness: Harness) -> None:
    harness.write("modules.d/keep.yaml", PUMP + "# changed\n")
    harness.look()
    assert harness.keys == []
    harness.write("modules.d/extra.yaml", PUMP)  # a module of the running host needs one too
    harness.look()
    assert harness.keys == ["made"]
