"""The unit files: ``systemd-analyze verify`` says nothing about them, each scores at most 2.0 on
``systemd-analyze security --offline=true`` (the module host and module instances with the
generator's drop-ins too, and plantd-keys, which runs as root), and they say what the
appliance relies on (Type=notify, watchdog, stop timeout, every key made before a service
needs it, …)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.systemd._analyze import analyze, exposure

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
KEYS = "plantd-keys.service"  # the oneshot that makes keys, as root; the others are plantd's
RELOAD = "plantd-reload.service"  # hot-plug's oneshot, as root (tests/systemd/test_reload_units.py)
UPDATE = "plantd-update.service"  # updates from the web app, as root (test_update_units.py)
DAEMONS = [name for name in SERVICES if name not in (KEYS, RELOAD, UPDATE)]
EXECUTABLES = (
    "plant",
    "plantd-broker",
    "plantd-state",
    "plantd-historian",
    "plantd-logger",
    "plantd-sink",
    "plantd-proxy",
    "plantd-control",
)
KEYS_INIT = "/usr/bin/flock /etc/plantd /opt/plantd/venv/bin/plant --config /etc/plantd keys init"
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (systemd)"
)


def instance(name: str, value: str = "demo") -> str:
    return name.replace("@.", f"@{value}.")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root directory as on the appliance: this host's system units, ours, and the
    executables they start (stubs: verify checks that they exist and are executable)."""
    root = tmp_path_factory.mktemp("root")
    system = root / "usr/lib/systemd/system"
    host = Path("/usr/lib/systemd/system")
    shutil.copytree(host if host.is_dir() else Path("/lib/systemd/system"), system, symlinks=True)
    for unit in [*UNITS.glob("*.service"), *UNITS.glob("*.target")]:
        shutil.copy(unit, system / unit.name)
    bin_dir = root / "opt/plantd/venv/bin"
    bin_dir.mkdir(parents=True)
    for name in EXECUTABLES:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/flock").write_text("#!/bin/sh\n")  # util-linux, Essential in Debian
    (root / "usr/bin/flock").chmod(0o755)
    (root / "bin").mkdir()
    for name in ("kill", "rm"):  # ExecReload=/bin/kill -HUP (procps), plantd-reload's /bin/rm
        (root / "bin" / name).write_text("#!/bin/sh\n")
        (root / "bin" / name).chmod(0o755)
    return root


def read_unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_every_unit_verifies_with_no_output(root: Path) -> None:
    names = [instance(n) for n in SERVICES] + ["plantd.target"]
    result = analyze("verify", f"--root={root}", *names)
    # verify prints warnings and still exits 0: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_does_catch_a_mistake(root: Path, tmp_path: Path) -> None:
    broken = root / "usr/lib/systemd/system/plantd-broken.service"
    broken.write_text(
        (UNITS / "plantd-broker.service").read_text().replace("WatchdogSec=", "WatchdogSecs=")
    )
    try:
        result = analyze("verify", f"--root={root}", "plantd-broken.service")
    finally:
        broken.unlink()
    assert "Unknown key 'WatchdogSecs'" in result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_security_exposure_at_most_2(root: Path, name: str) -> None:
    result = analyze("security", "--offline=true", f"--root={root}", instance(name))
    assert result.returncode == 0, result.stderr
    assert exposure(result.stdout) <= MAX_EXPOSURE, result.stdout


WORST_CASES = [
    # The worst the generator writes: a real /dev with devices, and any address.
    "driver: modbus\nconnection: {transport: rtu-over-tcp, host: plc.example.com}\n",
    "driver: serial\nconnection: {port: /dev/ttyUSB0}\n",
    "driver: gpio\nconnection: {chip: /dev/gpiochip0}\n",
]


def exposure_with_drop_ins(root: Path, config: Path, unit: str) -> subprocess.CompletedProcess[str]:
    # /etc/systemd/system: where `--offline` looks for drop-ins under --root (the generator's
    # own directory, /run/systemd/generator, weighs the same for systemd).
    out = root / "etc/systemd/system"
    subprocess.run(
        [sys.executable, str(UNITS / "plantd-module-generator"), str(out)],
        env={**os.environ, "PLANTD_CONFIG": str(config)},
        check=True,
    )
    try:
        assert (out / f"{unit}.d" / "50-plantd-access.conf").exists()
        return analyze("security", "--offline=true", f"--root={root}", unit)
    finally:
        shutil.rmtree(out)


@pytest.mark.parametrize("module", WORST_CASES)
def test_isolated_module_instances_with_their_drop_ins_stay_at_most_2(
    root: Path, tmp_path: Path, module: str
) -> None:
    config = tmp_path / "etc"
    (config / "modules.d").mkdir(parents=True)
    (config / "modules.d/dev.yaml").write_text(module + "isolated: true\n")
    result = exposure_with_drop_ins(root, config, "plantd-module@dev.service")
    assert result.returncode == 0, result.stderr
    assert "PrivateDevices=" in result.stdout
    assert exposure(result.stdout) <= MAX_EXPOSURE, result.stdout


def test_the_module_host_with_every_worst_case_at_once_stays_at_most_2(
    root: Path, tmp_path: Path
) -> None:
    config = tmp_path / "etc"
    (config / "modules.d").mkdir(parents=True)
    for n, module in enumerate(WORST_CASES):
        (config / f"modules.d/dev{n}.yaml").write_text(module)
    result = exposure_with_drop_ins(root, config, "plantd-modules.service")
    assert result.returncode == 0, result.stderr
    assert "PrivateDevices=" in result.stdout
    assert exposure(result.stdout) <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize(
    "name",
    [
        "plantd-broker.service",
        "plantd-state.service",
        "plantd-module@.service",
        "plantd-modules.service",
        "plantd-historian.service",
        "plantd-control.service",
        "plantd-logger.service",
        "plantd-sink@.service",
    ],
)
def test_the_services_that_speak_sd_notify(name: str) -> None:
    service = read_unit(name)["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "20s"


@pytest.mark.parametrize("name", DAEMONS)
def test_common_rules(name: str) -> None:
    unit = read_unit(name)
    service = unit["Service"]
    assert service["User"] == "plantd"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["NoNewPrivileges"] == "yes"
    assert service["TimeoutStopSec"] == "15s"  # orderly stop on SIGTERM well within it
    assert service["KillMode"] == "mixed"
    # A configuration error is not retried (nor, for the state service, a damaged database).
    expected = "2 65" if name == "plantd-state.service" else "2"
    assert service["RestartPreventExitStatus"] == expected
    assert service["ExecStart"].startswith("/opt/plantd/venv/bin/")
    assert " --config /etc/plantd" in service["ExecStart"]
    assert unit["Unit"]["PartOf"] == "plantd.target"
    assert unit["Install"]["WantedBy"] == "plantd.target"
    # Its key is there before it starts (plantd-keys, at every boot).
    assert KEYS in unit["Unit"]["Wants"].split()
    assert KEYS in unit["Unit"]["After"].split()


def test_the_keys_unit() -> None:
    """plantd-keys: a oneshot, as root (it writes the allow-list and gives secrets to plantd),
    with just the capabilities that takes, no network, and part of plantd.target."""
    unit = read_unit(KEYS)
    service = unit["Service"]
    assert (service["Type"], service["RemainAfterExit"]) == ("oneshot", "yes")
    assert "User" not in service  # root
    assert service["ExecStart"] == f"{KEYS_INIT} --owner plantd --admin root"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"].split() == ["/etc/plantd/keys", "/var/lib/plantd"]
    assert "StateDirectory" not in service  # as root, it would give /var/lib/plantd to root
    assert service["CapabilityBoundingSet"].split() == [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER",
    ]  # fmt: skip
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateNetwork"] == "yes"
    assert unit["Unit"]["PartOf"] == "plantd.target"  # restarting the target runs it again
    assert unit["Install"]["WantedBy"] == "plantd.target"


@pytest.mark.parametrize(
    ("name", "principal"),
    [
        ("plantd-module@.service", "module.%i"),
        ("plantd-modules.service", "module.NAME"),
        ("plantd-sink@.service", "sink.%i"),
    ],
)
def test_a_module_or_sink_added_later_gets_its_key_before_it_starts(
    name: str, principal: str
) -> None:
    service = read_unit(name)["Service"]
    # `+`: as root, outside the sandbox; the same command as plantd-keys, under its lock.
    assert service["ExecStartPre"] == f"+{KEYS_INIT} --owner plantd"
    assert principal in Path(UNITS / name).read_text()  # the comment says whose key


def test_the_module_template() -> None:
    unit = read_unit("plantd-module@.service")
    assert unit["Service"]["ExecStart"] == (
        "/opt/plantd/venv/bin/plant --config /etc/plantd module run %i"
    )
    assert unit["Unit"]["ConditionPathExists"] == "/etc/plantd/modules.d/%i.yaml"
    assert unit["Service"]["PrivateDevices"] == "yes"  # until the generator grants devices
    assert "plantd-broker.service" in unit["Unit"]["After"]


def test_the_module_host() -> None:
    """plantd-modules: every module but the isolated ones, in one process, sandboxed as a
    module instance is (the generator's drop-in grants the union of its modules' access)."""
    unit = read_unit("plantd-modules.service")
    assert unit["Service"]["ExecStart"] == (
        "/opt/plantd/venv/bin/plant --config /etc/plantd module host"
    )
    assert unit["Unit"]["ConditionPathExistsGlob"] == "/etc/plantd/modules.d/*.yaml"
    assert "plantd-broker.service" in unit["Unit"]["After"]
    host, template = unit["Service"], read_unit("plantd-module@.service")["Service"]
    # The same sandbox as a module instance, option for option (but what names the unit).
    differ = {"ExecStart", "ExecReload", "TimeoutStartSec", "SyslogIdentifier"}
    assert {k: v for k, v in host.items() if k not in differ} == {
        k: v for k, v in template.items() if k not in differ
    }


def test_the_broker_may_write_its_audit_trail() -> None:
    service = read_unit("plantd-broker.service")["Service"]
    assert service["StateDirectory"] == "plantd"  # <paths.data>/audit.db


def test_the_target_groups_and_orders_the_core() -> None:
    unit = read_unit("plantd.target")
    core = [KEYS, "plantd-broker.service", "plantd-state.service"]
    assert unit["Unit"]["Wants"].split() == core
    assert unit["Unit"]["After"].split() == core
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    state = read_unit("plantd-state.service")["Unit"]
    # The logger first, so that the state service's first records are kept; ordering only.
    assert state["After"].split() == ["plantd-broker.service", "plantd-logger.service", KEYS]
    assert "plantd-logger.service" not in state["Wants"]


def test_sysusers_and_tmpfiles_snippets_parse(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("needs systemd-sysusers")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / name).write_text("")
    (root / "etc/group").write_text("dialout:x:20:\n")
    result = subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(UNITS / "plantd.sysusers")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "plantd:x:790:790:plantd services:/var/lib/plantd:" in (root / "etc/passwd").read_text()
    groups = (root / "etc/group").read_text()
    assert "dialout:x:20:plantd" in groups
    assert "gpio:x:791:plantd" in groups
    (root / "etc/plantd").mkdir()  # the image's defaults, or the data partition's copy
    tmpfiles = subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(UNITS / "plantd.tmpfiles")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tmpfiles.returncode == 0, tmpfiles.stderr
    assert (root / "var/lib/plantd").is_dir()
    # The allow-list: root's, read by the plantd group; the secrets: plantd's alone.
    plantd = 790
    for path, owner, mode in [
        ("etc/plantd", (0, plantd), 0o750),
        ("etc/plantd/keys", (0, plantd), 0o750),
        ("var/lib/plantd/secrets", (plantd, plantd), 0o700),
    ]:
        stat = (root / path).stat()
        assert ((stat.st_uid, stat.st_gid), stat.st_mode & 0o7777) == (owner, mode), path
