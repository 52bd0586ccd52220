"""Hot-plug's units: plantd-reload.path watches modules.d/ and sinks.d/ and runs
plantd-reload.service (``plant reload``); the services that re-read their configuration on
SIGHUP say so with ``ExecReload=``. ``systemd-analyze verify`` says nothing about them, the
reload service (root, it runs systemctl) stays at most 2.0 on ``systemd-analyze security``,
and what ``plant reload`` on the appliance relies on (the flag file that runs it again, the
generator's drop-in it compares) is where the units and the generator say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plantd.cli._reload_systemd import AGAIN_FILE, HOST_DROP_IN, HOST_UNIT
from plantd.config import DEFAULT_CONFIG_DIR, PathsConfig
from tests.systemd._analyze import analyze, exposure, needs_systemd
from tests.systemd._unitfiles import REPO, UNITS, appliance_root, one, settings, values

PATH_UNIT = "plantd-reload.path"
SERVICE = "plantd-reload.service"
GENERATOR = UNITS / "plantd-module-generator"
EXECUTABLES = ("plant", "plantd-broker", "plantd-historian", "plantd-sink")
KEYS_INIT = "/usr/bin/flock /etc/plantd /opt/plantd/venv/bin/plant --config /etc/plantd keys init"
HUP = "/bin/kill -HUP $MAINPID"
# What re-reads its configuration on SIGHUP: the broker (limits, keys), the historian
# (retention), the module host (modules.d/) and the sinks (their sinks.d/ file).
RELOADABLE = [
    "plantd-broker.service",
    "plantd-historian.service",
    "plantd-modules.service",
    "plantd-sink@.service",
]


def test_the_path_unit_watches_both_directories_and_starts_plant_reload() -> None:
    assert values(PATH_UNIT, "Path", "PathChanged") == [
        f"{DEFAULT_CONFIG_DIR}/modules.d",
        f"{DEFAULT_CONFIG_DIR}/sinks.d",
    ]
    assert "PathModified" not in {k for _, k, _ in settings(PATH_UNIT)}  # fires mid-write
    assert one(PATH_UNIT, "Path", "Unit") == SERVICE
    assert one(SERVICE, "Service", "ExecStart") == (
        "/opt/plantd/venv/bin/plant --config /etc/plantd reload"
    )
    assert one(PATH_UNIT, "Install", "WantedBy") == "plantd.target"
    assert one(PATH_UNIT, "Unit", "PartOf") == "plantd.target"  # stopped with the stack


def test_a_change_during_a_run_runs_it_again_and_the_flag_cannot_loop() -> None:
    # A path unit does not watch while its service runs: plant reload leaves this flag when
    # the files changed meanwhile, the path unit sees it when the service ends ...
    flag = str(PathsConfig().run / AGAIN_FILE)
    assert values(PATH_UNIT, "Path", "PathExists") == [flag]
    # ... and every run removes it before it reads the files, so it never outlives one run.
    assert one(SERVICE, "Service", "ExecStartPre") == f"/bin/rm -f {flag}"


def test_it_cannot_loop_and_quick_edits_do_not_stop_it() -> None:
    assert one(PATH_UNIT, "Path", "TriggerLimitIntervalSec") == "60s"
    assert int(one(PATH_UNIT, "Path", "TriggerLimitBurst")) <= 30
    # systemd's default start limit (5 in 10 s) would stop hot-plug after a few quick edits.
    assert one(SERVICE, "Unit", "StartLimitIntervalSec") == "0"


def test_no_ordering_cycle_with_the_stack() -> None:
    # A path unit comes before paths.target, which the plantd services come after.
    assert not values(PATH_UNIT, "Unit", "After")
    assert one(SERVICE, "Unit", "After") == "plantd.target"  # applies once the stack is up


def test_the_reload_service_is_a_root_oneshot_with_one_capability() -> None:
    assert one(SERVICE, "Service", "Type") == "oneshot"
    assert not values(SERVICE, "Service", "User")  # root: systemctl
    assert one(SERVICE, "Service", "CapabilityBoundingSet") == "CAP_DAC_OVERRIDE"
    assert one(SERVICE, "Service", "ReadWritePaths") == str(PathsConfig().run)
    assert one(SERVICE, "Service", "PrivateNetwork") == "yes"
    assert one(SERVICE, "Service", "ProtectSystem") == "strict"
    assert not values(SERVICE, "Service", "RuntimeDirectory")  # would give /run/plantd to root
    assert not values(SERVICE, "Install", "WantedBy")  # started by the path unit alone


@pytest.mark.parametrize("name", RELOADABLE)
def test_services_that_reread_their_configuration_take_sighup(name: str) -> None:
    assert values(name, "Service", "ExecReload")[-1] == HUP


def test_the_module_host_makes_a_new_modules_key_before_it_reloads() -> None:
    assert values("plantd-modules.service", "Service", "ExecReload") == [
        f"+{KEYS_INIT} --owner plantd",
        HUP,
    ]


def test_an_isolated_module_has_no_reload_a_change_restarts_it() -> None:
    assert not values("plantd-module@.service", "Service", "ExecReload")


def test_no_unit_still_says_to_restart_by_hand_after_editing_modules_d() -> None:
    text = (UNITS / "plantd-modules.service").read_text()
    assert "After editing modules.d/" not in text
    assert "plantd-reload.path" in text


def test_the_drop_in_plant_reload_compares_is_the_one_the_generator_writes(
    tmp_path: Path,
) -> None:
    config, out = tmp_path / "etc", tmp_path / "out"
    (config / "modules.d").mkdir(parents=True)
    (config / "sinks.d").mkdir()
    (config / "modules.d/rtu.yaml").write_text("driver: serial\nconnection: {port: /dev/ttyS0}\n")
    (config / "modules.d/pump.yaml").write_text("driver: sim\nisolated: true\n")
    (config / "sinks.d/upstream.yaml").write_text("type: mqtt\n")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), str(out), str(out / "early"), str(out / "late")],
        env={**os.environ, "PLANTD_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert "DeviceAllow=/dev/ttyS0 rw" in (out / HOST_DROP_IN).read_text()
    assert HOST_DROP_IN.parts[0] == f"{HOST_UNIT}.d"
    assert sorted(p.name for p in (out / "plantd.target.wants").iterdir()) == [
        "plantd-module@pump.service",
        HOST_UNIT,
        "plantd-sink@upstream.service",
    ]  # the path unit is enabled by the image, not the generator


def test_the_image_installs_and_enables_the_path_unit() -> None:
    script = (REPO / "image/layers/plantd/customize.sh").read_text()
    assert '"$repo"/systemd/*.path' in script
    assert "enable plantd-reload.path" in script


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stubs = [f"opt/plantd/venv/bin/{name}" for name in EXECUTABLES]
    return appliance_root(
        tmp_path_factory.mktemp("root"), [*stubs, "usr/bin/flock", "bin/kill", "bin/rm"]
    )


@needs_systemd
def test_the_units_verify_with_no_output(root: Path) -> None:
    names = [PATH_UNIT, SERVICE, "plantd.target"]
    names += [name.replace("@.", "@demo.") for name in RELOADABLE]
    result = analyze("verify", f"--root={root}", *names)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd
def test_the_reload_service_scores_at_most_2(root: Path) -> None:
    result = analyze("security", "--offline=true", f"--root={root}", SERVICE)
    assert result.returncode == 0, result.stderr
    assert exposure(result.stdout) <= 2.0, result.stdout
