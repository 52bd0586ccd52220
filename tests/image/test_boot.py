"""The amd64 appliance image, built and booted under QEMU (software emulation), checked from
inside over SSH as an engineer would: first boot with a provisioning file on the boot
partition, plantd.target active and nothing failed, every key made (CURVE on, root an admin,
nobody else admitted), the broker answering MMI, the demo module served by the module host,
the state service keeping a value across an orderly reboot and across a power cut; and the GPIO
driver's tests run inside it against the kernel's gpio-sim (:mod:`tests.image.in_guest`).
It boots through UEFI firmware and systemd-boot, as a real machine does, so that the A/B
updates are the real thing: the signed bundle installed into slot B and booted (the orderly
reboot), and a broken bundle installed into slot A whose trial boot fails its health check —
the machine comes back to slot B by itself, state intact.

Also measures what the closing note reports (boot time to plantd.target, RSS and idle CPU of
each plantd service) and writes it to ``figures.json`` beside the image (or to
``$PLANTD_IMAGE_FIGURES``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from image.gpio_sim import build_gpio_sim
from image.qemu import Machine, list_boot_partition, prepare
from plantd.security import generate
from tests.image._bundles import broken_bundle
from tests.image.conftest import REPO, Built, Progress, minutes
from tests.image.in_guest import GPIO_TESTS, GUEST_DIR, run_pytest, ship

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

GROW = 1 << 30  # the "card" is 1 GiB larger than the image: the data partition grows into it
DATA_PARTITION_BYTES = 256 << 20
SERVICES = (
    "plantd-broker",
    "plantd-state",
    "plantd-historian",
    "plantd-logger",
    "plantd-modules",
    "plantd-proxy",
    "plantd-control",
)
# Whose secret keys the box holds, and who owns each (user.root: root's admin key for `plant`).
SECRETS = {
    "broker": "plantd",
    "service.state": "plantd",
    "service.historian": "plantd",
    "service.logger": "plantd",
    "service.modules": "plantd",
    "service.proxy": "plantd",
    "service.control": "plantd",
    "module.demo": "plantd",
    "user.root": "root",
}
CORE = ("plantd-broker", "plantd-state", "plantd-modules")
# A person the provisioning file admits, by a public key whose secret stays elsewhere.
OPS_KEY = generate({"principal": "user.ops"}).public.decode()
PROVISION = """\
hostname: pump-station-3
plantd:
  logging: {level: info}
  proxy:  # the whole plantd.yaml is replaced: keep the web app on the network, over HTTPS
    listen: "[::]:8443"
    tls_certificate: /etc/plantd/keys/tls/device.crt
    tls_key: /var/lib/plantd/secrets/device.tls_key
modules:
  demo:
    driver: fake
    description: a module with no hardware, so that the stack has one to run
    groups:
      - name: main
        interval: 1s
        points:
          - {name: level, value: 5.0, pattern: sine, period: 60}
          - {name: count, pattern: counter}
users:
  ops: {public_key: 'OPS_KEY', roles: [operator]}
""".replace("OPS_KEY", OPS_KEY)
IDLE_SECONDS = 30
RSS_BUDGET_MB = 150


class Appliance:
    """A booted machine and what the tests learned about it along the way."""

    def __init__(
        self, built: Built, machine: Machine, progress: Progress, aside: ThreadPoolExecutor
    ) -> None:
        self.built = built
        self.machine = machine
        self.progress = progress
        self.figures: dict[str, Any] = {"image": built.report}
        # Made on the host while the guest boots, rather than while a test waits for them:
        # gpio-sim.ko for the guest's kernel, and the broken update bundle.
        self.gpio_sim: Future[Path] = aside.submit(build_gpio_sim, built.out)
        signing = built.report["signing"]
        self.broken_bundle: Future[Path] = aside.submit(
            broken_bundle,
            built.out / "plantd-amd64.raucb",
            Path(signing["key"]),
            Path(signing["certificate"]),
            machine.work / "broken",
        )

    def start(self, why: str) -> None:
        self.machine.start()
        self.progress(
            f"qemu: {why}: started ({self.machine.accelerator}; "
            f"ssh on 127.0.0.1:{self.machine.port}; console {self.machine.console})"
        )

    def sh(self, command: str, *, check: bool = True) -> str:
        return self.machine.ssh(command, check=check).stdout

    def boot_id(self) -> str:
        return self.sh("cat /proc/sys/kernel/random/boot_id").strip()

    def wait_booted(self, why: str, previous_boot: str | None = None) -> dict[str, Any]:
        """Wait for SSH (of a new boot) and for systemd to finish starting; boot figures.

        ``ssh_after_s`` counts from QEMU's start, or for a reboot from the reboot command."""
        began = time.monotonic() if previous_boot is not None else self.machine.started_at
        self.machine.wait_for_ssh()
        if previous_boot is not None:
            deadline = time.monotonic() + 300
            while self.boot_id() == previous_boot:
                assert time.monotonic() < deadline, "the machine did not reboot"
                time.sleep(2)
                self.machine.wait_for_ssh()
        ssh_after = time.monotonic() - began
        self.progress(f"qemu: {why}: ssh up after {minutes(ssh_after)}")
        state = self.settled()
        self.progress(f"qemu: {why}: systemd {state} after {minutes(time.monotonic() - began)}")
        target_us = int(
            self.sh("systemctl show -P ActiveEnterTimestampMonotonic plantd.target").strip()
        )
        return {
            "accelerator": self.machine.accelerator,
            "ssh_after_s": round(ssh_after, 1),
            "plantd_target_after_kernel_start_s": round(target_us / 1e6, 1),
            "system_state": state,
            "systemd_analyze": self.sh("systemd-analyze time | head -n 1").strip(),
        }

    def slot(self) -> str:
        """The slot this boot came from (plantd.slot= on the kernel command line)."""
        words = self.sh("cat /proc/cmdline").split()
        return next(w.split("=", 1)[1] for w in words if w.startswith("plantd.slot="))

    def slots(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.plant("--json", "system", "status"))
        return status

    def install(self, bundle: Path) -> str:
        """Copy an update bundle into the guest and install it (no reboot yet); what plant
        system update said."""
        started = time.monotonic()
        self.machine.send(bundle, "/var/tmp/update.raucb")
        self.progress(f"qemu: {bundle.name} copied in {minutes(time.monotonic() - started)}")
        # RAUC writes the whole slot (1 GiB), checking every block: minutes under emulation.
        said = self.machine.ssh(
            "plant system update --no-reboot /var/tmp/update.raucb 2>&1", timeout=1500
        ).stdout
        self.sh("rm /var/tmp/update.raucb")
        self.progress(f"qemu: {bundle.name} installed in {minutes(time.monotonic() - started)}")
        return said

    def settled(self) -> str:
        """systemd's state once no job is left. At the first boot that includes plantd-reload
        applying what provisioning wrote into modules.d/: about a minute under emulation."""
        command = "systemctl is-system-running --wait"
        return self.machine.ssh(command, check=False, timeout=600).stdout.strip()

    def plant(self, *args: str, check: bool = True) -> str:
        return self.sh("plant " + " ".join(shlex.quote(a) for a in args), check=check)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        text = self.sh(f"systemctl show -p {','.join(properties)} {shlex.quote(unit)}")
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def identity(self) -> str:
        key = "/var/lib/device/ssh/ssh_host_ed25519_key.pub"
        return self.sh(
            f"cat /etc/machine-id; hostname; ssh-keygen -l -f {key}; "
            "sha256sum /etc/plantd/keys/*.key /var/lib/plantd/secrets/*.key_secret"
        )


@pytest.fixture(scope="module")
def appliance(
    amd64: Built, tmp_path_factory: pytest.TempPathFactory, progress: Progress
) -> Iterator[Appliance]:
    work = tmp_path_factory.mktemp("qemu")
    prepared = prepare(amd64.out, work, grow=GROW, provision=PROVISION)
    machine = Machine(prepared, work, firmware=True)
    aside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="made-aside")
    appliance = Appliance(amd64, machine, progress, aside)
    appliance.start("first boot")
    try:
        appliance.figures["first_boot"] = appliance.wait_booted("first boot")
        yield appliance
    finally:
        aside.shutdown(cancel_futures=True)
        machine.close()
        target = Path(os.environ.get("PLANTD_IMAGE_FIGURES") or amd64.out / "figures.json")
        target.write_text(json.dumps(appliance.figures, indent=2) + "\n")
        print(f"\nfigures: {target}\n{json.dumps(appliance.figures, indent=2)}")


def test_first_boot_reaches_plantd_target_with_nothing_failed(appliance: Appliance) -> None:
    assert appliance.figures["first_boot"]["system_state"] == "running", appliance.sh(
        "systemctl --failed --no-legend; journalctl -p warning -b --no-pager | tail -n 40"
    )
    assert appliance.sh("systemctl is-active plantd.target").strip() == "active"
    assert appliance.sh("systemctl --failed --no-legend --plain").strip() == ""
    for service in SERVICES:
        assert appliance.show(service, "ActiveState", "SubState", "NRestarts") == {
            "ActiveState": "active",
            "SubState": "running",
            "NRestarts": "0",
        }, service


def test_the_broker_answers_mmi(appliance: Appliance) -> None:
    assert appliance.plant("mmi", "service", "org.plantd.State").strip().startswith("200")
    services = appliance.plant("--json", "mmi", "services")
    assert "org.plantd.State" in services
    assert "org.plantd.module.demo" in services
    status = json.loads(appliance.plant("--json", "module", "status", "demo"))
    assert status["connection"]["state"] == "connected"


def test_services_tell_systemd_how_they_are(appliance: Appliance) -> None:
    broker = appliance.sh("systemctl show -P StatusText plantd-broker").strip()
    assert re.fullmatch(r"\d+ workers, \d+ services, \d+ queued, \d+ requests", broker), broker
    assert "state.db" in appliance.sh("systemctl show -P StatusText plantd-state")
    # The demo module runs in the module host, which says who runs.
    assert appliance.sh("systemctl show -P StatusText plantd-modules").strip() == (
        "module host: 1 of 1 modules running (demo)"
    )
    assert "plantd-module@demo.service" not in appliance.sh("systemctl list-units --all")
    for service in ("plantd-broker", "plantd-state", "plantd-modules"):
        assert appliance.sh(f"systemctl show -P WatchdogUSec {service}").strip() == "20s"


def test_plant_health_logs_and_metrics_see_the_whole_box(appliance: Appliance) -> None:
    # Health is judged from snapshots every 5 s; a late poll on this emulated CPU degrades the
    # module for one snapshot, so wait for an ok rather than take the first answer.
    deadline = time.monotonic() + 120
    while True:
        report = json.loads(appliance.plant("--json", "health", check=False) or "{}")
        if report.get("ok") or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert report.get("verdict") == "ok", report
    names = {entry["name"] for entry in report["services"]}
    assert names >= {"broker", "state", "historian", "logger", "modules", "module.demo", "disk"}
    # The state service starts after the logger, so its first records are in the store.
    lines = appliance.plant("--json", "logs", "--service", "state", "-n", "50").splitlines()
    records = [json.loads(line) for line in lines]
    assert any("state.db" in record["message"] for record in records), records
    metrics = appliance.sh(
        "/opt/plantd/venv/bin/python -c 'import urllib.request; print(urllib.request.urlopen("
        '"http://127.0.0.1:9798/metrics").read().decode())\''
    )
    assert re.search(r'plantd_module_polls_total\{[^}]*module="demo"[^}]*\} [1-9]', metrics)


# In the guest: log in over HTTPS (verified against the device certificate), then ask for
# health and for a module's points through the REST API, as a browser or a script would.
WEB_CHECK = """
import http.cookiejar, json, ssl, sys, urllib.error, urllib.request
context = ssl.create_default_context(cafile="/etc/plantd/keys/tls/device.crt")
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(
    urllib.request.HTTPSHandler(context=context), urllib.request.HTTPCookieProcessor(jar))
base = "https://localhost:8443"
login = urllib.request.Request(base + "/api/v1/login", method="POST",
    data=json.dumps({"user": "ops", "password": sys.argv[1]}).encode(),
    headers={"Content-Type": "application/json"})
me = json.load(opener.open(login))
points = urllib.request.Request(base + "/api/v1/services/org.plantd.module.demo/points",
    method="POST", data=b"{}", headers={"Content-Type": "application/json",
    "X-CSRF-Token": me["csrf"]})
result = json.load(opener.open(points))
try:
    urllib.request.urlopen(base + "/api/v1/services", context=context)
    anonymous = 200
except urllib.error.HTTPError as exc:
    anonymous = exc.code
print(json.dumps({"me": me, "points": result, "anonymous": anonymous}))
"""


def test_the_web_app_serves_https_with_the_device_certificate(appliance: Appliance) -> None:
    assert appliance.show("plantd-proxy", "ActiveState")["ActiveState"] == "active"
    password = "ops-web-password-1"
    appliance.sh(f"printf '%s\\n' {password} | plant proxy passwd user.ops --password-stdin")
    out = appliance.sh(
        f"/opt/plantd/venv/bin/python -c {shlex.quote(WEB_CHECK)} {shlex.quote(password)}"
    )
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["me"]["principal"] == "user.ops"
    assert answer["me"]["roles"] == ["operator"]
    assert "level" in json.dumps(answer["points"])  # the demo module's points, via the proxy
    assert answer["anonymous"] == 401  # nothing without credentials


CONTROL_FILES = {
    "alarms.d/demo.yaml": (
        "alarms:\n"
        "  - {name: demo-count, point: demo.count, type: high, limit: 0, priority: high,\n"
        "     message: the demo counter counts}\n"
    ),
    "calc.d/demo.yaml": 'calc:\n  - {name: doubled, expr: "demo.level * 2"}\n',
}


def test_alarms_and_calculated_points_run_on_the_box(appliance: Appliance) -> None:
    """docs/control.md on the appliance: files in alarms.d/ and calc.d/, plantd-control
    restarted, an alarm raised from the demo module's samples and acknowledged (as root),
    a calculated point in the historian."""
    sh = appliance.sh
    for name, text in CONTROL_FILES.items():
        sh(f"printf %s {shlex.quote(text)} > /etc/plantd/{name}")
    try:
        assert "config OK" in appliance.plant("config", "check")
        sh("systemctl restart plantd-control")
        assert appliance.show("plantd-control", "ActiveState", "NRestarts") == {
            "ActiveState": "active",
            "NRestarts": "0",
        }, sh("journalctl -b -u plantd-control --no-pager | tail -n 20")
        deadline = time.monotonic() + 120
        while True:
            (alarm,) = json.loads(appliance.plant("call", "org.plantd.Alarms", "list"))
            if alarm["state"] == "unacknowledged" or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert (alarm["alarm"], alarm["state"]) == ("demo-count", "unacknowledged"), alarm
        acked = json.loads(
            appliance.plant("call", "org.plantd.Alarms", "ack", '{"alarm": "demo-count"}')
        )
        assert (acked[0]["state"], acked[0]["by"]) == ("acknowledged", "user.root")
        while True:
            rows = appliance.plant("history", "calc.doubled", "--since", "5m", check=False)
            if "calc.doubled" in rows or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert "calc.doubled" in rows, rows
    finally:
        sh("rm -f /etc/plantd/alarms.d/demo.yaml /etc/plantd/calc.d/demo.yaml")
        sh("systemctl restart plantd-control", check=False)


def test_the_journal_has_plantds_own_fields(appliance: Appliance) -> None:
    records = [
        json.loads(line)
        for line in appliance.sh("journalctl -b -u plantd-state -o json --no-pager").splitlines()
    ]
    ours = [r for r in records if r.get("PLANTD_SERVICE") == "state"]
    assert ours, "no record with PLANTD_SERVICE=state (systemd.journal not used?)"
    assert {r["PRIORITY"] for r in ours} >= {"6"}
    assert all(r.get("LOGGER", "").startswith("plantd") for r in ours)
    module = appliance.sh("journalctl -b PLANTD_MODULE=demo -o cat --no-pager")
    assert "demo" in module


def test_first_boot_made_the_device_its_own(appliance: Appliance) -> None:
    sh = appliance.sh
    assert sh("hostname").strip() == "pump-station-3"  # from the provisioning file
    machine_id = sh("cat /etc/machine-id").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
    assert sh("cat /var/lib/device/machine-id").strip() == machine_id
    assert sh("ls /var/lib/device/ssh").split() == [
        "authorized_keys", "ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub",
        "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
    ]  # fmt: skip
    data = int(sh("findmnt -n -b -o SIZE /var").strip())
    assert data > DATA_PARTITION_BYTES + GROW // 2, "the data partition did not grow"
    assert sh("cat /etc/plantd/modules.d/demo.yaml").startswith("# Written by plantd-provision")
    boot = sh("ls /boot/firmware").split()
    assert "plantd-provision.yaml.imported" in boot
    assert "authorized_keys.imported" in boot
    assert "plantd-provision.errors.txt" not in boot


def test_every_key_is_made_with_the_right_owner(appliance: Appliance) -> None:
    sh = appliance.sh
    assert appliance.show("plantd-keys", "ActiveState", "Result") == {
        "ActiveState": "active",
        "Result": "success",
    }
    # The allow-list is root's, read by the plantd group; the secrets are plantd's alone, but
    # for root's own admin key.
    assert sh("stat -c '%U %G %a' /etc/plantd/keys").split() == ["root", "plantd", "750"]
    assert sh("stat -c '%U %G %a' /var/lib/plantd/secrets").split() == ["plantd", "plantd", "700"]
    for principal, owner in SECRETS.items():
        secret = f"/var/lib/plantd/secrets/{principal}.key_secret"
        assert sh(f"stat -c '%U %a' {secret}").split() == [owner, "600"], principal
        public = f"/etc/plantd/keys/{principal}.key"
        assert sh(f"stat -c '%U %a' {public}").split() == ["root", "644"], principal
    assert sh("test -e /var/lib/plantd/keys && echo there || echo gone").strip() == "gone"
    # `plant keys list` as root: the services and the module admitted, root an admin, the
    # provisioning file's operator, and nobody else (no default credentials).
    keys = json.loads(appliance.plant("--json", "keys", "list"))
    listed = {item["principal"]: item for item in keys}
    for principal in ("service.state", "service.historian", "module.demo", "user.root"):
        assert listed[principal]["status"] == "admitted", listed
        assert listed[principal]["secret_here"], principal
    assert listed["user.root"]["roles"] == ["admin"]
    assert sorted(name for name in listed if name.startswith("user.")) == ["user.ops", "user.root"]
    ops = listed["user.ops"]
    assert (ops["status"], ops["roles"], ops["public_key"]) == ("admitted", ["operator"], OPS_KEY)
    assert not ops["secret_here"]
    mode = sh("stat -c '%U %G %a' /etc/plantd/keys/user.ops.key").split()
    assert mode == ["root", "plantd", "640"]
    # The broker runs CURVE, and its audit trail is written.
    broker = sh("journalctl -b -u plantd-broker -o cat --no-pager")
    assert "CURVE" in broker, broker
    # …reading every key file, user.ops's (0640 root:plantd) too, from inside its sandbox.
    admitted = sum(1 for item in keys if item["status"] == "admitted")
    assert f"{admitted} principal(s) admitted from /etc/plantd/keys" in broker, broker
    assert sh("stat -c '%U' /var/lib/plantd/audit.db").strip() == "plantd"


def test_a_key_is_admitted_used_and_revoked(appliance: Appliance) -> None:
    """As docs/appliance.md tells an admin: a person's key made elsewhere (`plant keys new`)
    is refused until `plant keys add`, and again after `plant keys revoke`."""
    plant, sh = appliance.plant, appliance.sh
    plant("keys", "new", "user.alice", "--out", "/tmp/alice.key_secret")

    def as_alice() -> subprocess.CompletedProcess[str]:
        return appliance.machine.ssh(
            "plant --identity /tmp/alice.key_secret mmi services --timeout 3 --retries 0",
            check=False,
        )

    try:
        assert as_alice().returncode != 0  # not admitted: nobody is, but root
        plant("keys", "add", "user.alice", "--key", "/tmp/alice.key", "--role", "viewer")
        time.sleep(2)  # the broker reads the keys directory again within a second
        assert "org.plantd.State" in as_alice().stdout
        plant("keys", "revoke", "user.alice")
        time.sleep(2)
        assert as_alice().returncode != 0
    finally:
        sh("rm -f /tmp/alice.key /tmp/alice.key_secret")
    broker = sh("journalctl -b -u plantd-broker -o cat --no-pager")
    assert "user.alice: added (roles: viewer)" in broker
    assert "user.alice: revoked" in broker


def test_module_files_are_hot_plugged_with_their_keys(appliance: Appliance) -> None:
    """As docs/reload.md says: a file written into modules.d/ is picked up by plantd-reload.path
    (`plant reload`): a hosted module joins the running host (reloaded, not restarted: the
    broker and the host keep their PIDs), an isolated one gets its own unit; each gets its key
    first. Removing the files stops them."""
    sh, plant = appliance.sh, appliance.plant
    folder = "/etc/plantd/modules.d"
    module = "driver: fake\ngroups: [{name: main, interval: 1s, points: [{name: n}]}]\n"
    assert sh("systemctl is-active plantd-reload.path").strip() == "active"
    pids = sh("systemctl show -P MainPID plantd-broker plantd-modules")

    def services() -> str:
        # While plant reload starts processes, the emulated guest's broker can take more than
        # the default second to answer at all (CI saw "no broker" once).
        return plant("mmi", "services", "--timeout", "10")

    def wait(condition: Any, what: str) -> float:
        # Generous: under emulation beside the rest of the suite, plant reload (a Python
        # start and a whole configuration check) alone can take a minute or more.
        began = time.monotonic()
        while not condition():
            assert time.monotonic() - began < 300, what + sh(
                "journalctl -b -u plantd-reload -u plantd-modules --no-pager | tail -n 40"
            )
            time.sleep(0.5)
        return round(time.monotonic() - began, 1)

    # Written elsewhere and renamed in: the watch never reads half a file.
    sh(f"printf '{module}' > {folder}/.late && mv {folder}/.late {folder}/late.yaml")
    isolated = module + "isolated: true\\n"
    sh(f"printf '{isolated}' > {folder}/.alone && mv {folder}/.alone {folder}/alone.yaml")
    try:
        seen = wait(
            lambda: all(f"org.plantd.module.{n}" in services() for n in ("late", "alone")),
            "late and alone never served",
        )
        appliance.figures["hot_plug_seen_s"] = seen  # SSH round trips and emulation included
        appliance.progress(f"qemu: hot-plugged modules served after {seen} s")
        assert sh("systemctl show -P MainPID plantd-broker plantd-modules") == pids
        assert "org.plantd.module.demo" in services()
        for name in ("late", "alone"):
            secret = f"/var/lib/plantd/secrets/module.{name}.key_secret"
            assert sh(f"stat -c '%U %a' {secret}").split() == ["plantd", "600"]
        assert appliance.show("plantd-module@alone", "ActiveState")["ActiveState"] == "active"
        assert sh("systemctl show -P StatusText plantd-modules").strip() == (
            "module host: 2 of 2 modules running (demo, late)"  # not alone: it is isolated
        )
    finally:
        sh(f"rm -f {folder}/late.yaml {folder}/alone.yaml")
    wait(
        lambda: not any(f"org.plantd.module.{n}" in services() for n in ("late", "alone")),
        "late and alone still served",
    )
    assert sh("systemctl show -P MainPID plantd-broker plantd-modules") == pids
    assert appliance.show("plantd-module@alone", "ActiveState")["ActiveState"] == "inactive"
    sh("plant keys revoke module.late; plant keys revoke module.alone", check=False)


def test_root_is_read_only_and_the_services_sandboxed(appliance: Appliance) -> None:
    sh = appliance.sh
    assert "ro" in sh("findmnt -n -o OPTIONS /").strip().split(",")
    assert "Read-only file system" in appliance.machine.ssh("touch /usr/x", check=False).stderr
    assert sh("findmnt -n -o FSTYPE,OPTIONS /var").split()[0] == "ext4"
    for service in SERVICES:
        unit = f"{service}.service"
        score = sh(f"systemd-analyze security {shlex.quote(unit)} | tail -n 1")
        match = re.search(r"exposure level for \S+: (\d+\.\d+)", score)
        assert match, score
        assert float(match.group(1)) <= 2.0, score
        assert sh(f"systemctl show -P User {unit}").strip() == "plantd"
    # plantd-keys runs as root (it writes the allow-list), sandboxed all the same.
    score = sh("systemd-analyze security plantd-keys.service | tail -n 1")
    match = re.search(r"exposure level for \S+: (\d+\.\d+)", score)
    assert match, score
    assert float(match.group(1)) <= 2.0, score


def test_idle_figures(appliance: Appliance) -> None:
    """RSS and idle CPU of each plantd service on the booted image (TCG: CPU is inflated)."""
    time.sleep(10)  # let the first-boot work settle
    pids = {s: appliance.sh(f"systemctl show -P MainPID {s}").strip() for s in SERVICES}

    def sample() -> dict[str, int]:
        return {
            s: int(appliance.sh(f"systemctl show -P CPUUsageNSec {s}").strip() or 0)
            for s in SERVICES
        }

    before, started = sample(), time.monotonic()
    time.sleep(IDLE_SECONDS)
    after, elapsed = sample(), time.monotonic() - started
    figures = {}
    for service, pid in pids.items():
        rss_kb = int(appliance.sh(f"awk '/^VmRSS/ {{print $2}}' /proc/{pid}/status").strip())
        figures[service] = {
            "rss_mb": round(rss_kb / 1024, 1),
            "cpu_percent": round((after[service] - before[service]) / 1e9 / elapsed * 100, 2),
        }
    total = round(sum(f["rss_mb"] for f in figures.values()), 1)
    # The budget is for the stack with one module: broker, state service, module.
    # The historian comes on top; both totals are recorded.
    core = round(sum(figures[s]["rss_mb"] for s in CORE), 1)
    appliance.figures["idle"] = {
        "services": figures,
        "total_rss_mb": total,
        "core_rss_mb": core,
        "total_cpu_percent": round(sum(f["cpu_percent"] for f in figures.values()), 2),
        "seconds": IDLE_SECONDS,
        "memory_used_mb": int(appliance.sh("free -m | awk '/^Mem/ {print $3}'").strip()),
        "note": (
            "QEMU TCG (software emulation): CPU figures are several times a real CPU's"
            if appliance.machine.accelerator == "tcg"
            else "QEMU with KVM"
        ),
    }
    assert core < RSS_BUDGET_MB, figures


def gpio_sim_tests() -> list[str]:
    """The names of the GPIO driver's gpio-sim tests, as pytest collects them here."""
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         GPIO_TESTS[-1], "-k", "gpio-sim"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split("::", 1)[1] for line in listed.splitlines() if "::" in line]


def test_the_gpio_driver_on_the_kernels_gpio_sim(appliance: Appliance) -> None:
    """The GPIO driver's gpio-sim tests (tests/drivers/gpio/test_driver.py: where the kernel has
    no gpio-sim, as on a CI machine, they skip) run inside the appliance: edges, debounce,
    counters, safe outputs and a chip that goes away, through the character device, on a chip
    the appliance's kernel simulates, with the appliance's Python and libraries. Debian's
    kernel has no gpio-sim; image/gpio_sim.py builds it for exactly that kernel, from the same
    Debian sources (the image stays without it)."""
    expected = gpio_sim_tests()
    assert len(expected) == 7, expected
    started = time.monotonic()
    module = appliance.gpio_sim.result()
    waited = minutes(time.monotonic() - started)
    appliance.progress(f"gpio: {module} ready (built beside the boot; waited {waited} for it)")
    started = time.monotonic()
    shipped = ship(appliance.machine, GPIO_TESTS, {"gpio-sim.ko": module})
    appliance.sh(f"modprobe configfs && insmod {GUEST_DIR}/gpio-sim.ko")
    assert appliance.sh("ls -d /sys/kernel/config/gpio-sim").strip()
    run = run_pytest(appliance.machine, GPIO_TESTS[-1], "-k", "gpio-sim")
    took = time.monotonic() - started
    appliance.progress(
        f"gpio: {len(run.outcomes)} gpio-sim tests ran in the guest in {minutes(took)} "
        f"(pytest exit {run.returncode}; shipped {', '.join(shipped)})"
    )
    appliance.figures["gpio_sim_in_guest_s"] = round(took, 1)
    assert run.returncode == 0, run.output
    # Every one of them ran there, and passed: none skipped.
    assert run.outcomes == {name: "passed" for name in expected}, run.output
    appliance.sh(f"rmmod gpio_sim; rm -rf {GUEST_DIR}")


def test_an_update_boots_slot_b_healthy_with_state_and_identity_kept(
    appliance: Appliance,
) -> None:
    """The signed bundle built beside the image goes into slot B; an orderly reboot starts it
    on trial; plantd comes up healthy there and plantd-boot-check keeps it."""
    plant, sh = appliance.plant, appliance.sh
    assert appliance.slot() == "a"
    assert appliance.slots() == {
        "booted": "a",
        "primary": "a",
        "slots": {"a": "good", "b": "missing"},
    }
    plant("state", "create-scope", "test")
    plant("state", "set", "test", "setpoint", "42.5")
    identity = appliance.identity()
    said = appliance.install(appliance.built.out / "plantd-amd64.raucb")
    assert "slot b boots at the next reboot, on trial" in said, said
    assert appliance.slots()["primary"] == "b"
    assert appliance.slots()["slots"]["b"] == "trying"
    boot = appliance.boot_id()
    appliance.machine.ssh("systemctl reboot", check=False)
    appliance.figures["update_to_b"] = appliance.wait_booted("update: slot B", previous_boot=boot)
    assert appliance.figures["update_to_b"]["system_state"] == "running", sh(
        "systemctl --failed --no-legend; journalctl -b -u plantd-boot-check --no-pager"
    )
    assert appliance.slot() == "b"
    # Healthy in time: kept (blessed), and it is the one that boots from now on.
    assert appliance.slots() == {"booted": "b", "primary": "b", "slots": {"a": "good", "b": "good"}}
    assert "is healthy after" in sh("journalctl -b -u plantd-boot-check --no-pager -o cat")
    rauc = json.loads(sh("rauc status --output-format=json"))
    assert rauc["booted"] == "b"
    assert plant("state", "get", "test", "setpoint").strip() == "42.5"
    assert appliance.identity() == identity
    # The first boot does not happen twice, and the journal kept the previous boot.
    assert sh("systemctl show -P ConditionResult plantd-firstboot").strip() == "no"
    assert len(sh("journalctl --list-boots --no-pager").strip().splitlines()) >= 2
    # Every plantd service stopped in order on SIGTERM, well within TimeoutStopSec.
    stops = sh("journalctl -b -1 -u 'plantd-*' --no-pager -o cat")
    assert "timed out" not in stops.lower(), stops
    assert "Stopped plantd-state.service" in stops


def test_state_survives_a_power_cut(appliance: Appliance) -> None:
    plant, machine = appliance.plant, appliance.machine
    plant("state", "set", "test", "setpoint", "43.5")  # acknowledged: on disk
    machine.power_cut()
    appliance.start("after a power cut")
    appliance.figures["after_power_cut"] = appliance.wait_booted("after a power cut")
    assert appliance.figures["after_power_cut"]["system_state"] == "running"
    assert plant("state", "get", "test", "setpoint").strip() == "43.5"
    assert appliance.sh("systemctl --failed --no-legend --plain").strip() == ""
    assert "ro" in appliance.sh("findmnt -n -o OPTIONS /").strip().split(",")
    assert appliance.slot() == "b"  # a kept slot stays kept through a power cut


UPLOAD = """
import os, ssl, sys, urllib.request
token, path = sys.argv[1], sys.argv[2]
request = urllib.request.Request(
    "https://[::1]:8443/api/v1/system/update?name=broken.raucb", data=open(path, "rb"),
    method="POST", headers={"Authorization": "Bearer " + token,
    "Content-Type": "application/octet-stream", "Content-Length": str(os.path.getsize(path))})
with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=900) as r:
    print(r.status, r.read().decode())
"""


def test_a_broken_update_from_the_web_api_falls_back_to_the_previous_slot_by_itself(
    appliance: Appliance,
) -> None:
    """A bundle that installs fine but whose plantd-broker cannot start, sent by an admin
    through the proxy's API (the unprivileged proxy drops it; plantd-update.service installs it
    as root and reboots): its trial boot never gets healthy, plantd-boot-check reboots at its
    deadline, and the boot loader — counting the try used up — boots slot B again, with the
    data partition as it was."""
    plant, sh, machine = appliance.plant, appliance.sh, appliance.machine
    bundle = appliance.broken_bundle.result()
    plant("state", "set", "test", "setpoint", "44.5")
    identity = appliance.identity()
    boots_before = len(sh("journalctl --list-boots --no-pager").strip().splitlines())
    boot = appliance.boot_id()
    token = plant("proxy", "token", "create", "user.root", "--name", "boot-test").strip()
    started = time.monotonic()
    machine.send(bundle, "/var/tmp/broken.raucb")
    sh(f"cat > /var/tmp/upload.py <<'EOF'\n{UPLOAD}\nEOF")
    answer = machine.ssh(
        f"/opt/plantd/venv/bin/python /var/tmp/upload.py {token} /var/tmp/broken.raucb",
        timeout=900,
    )
    assert answer.stdout.startswith("202 "), answer
    appliance.progress(
        f"qemu: broken.raucb sent to the proxy in {minutes(time.monotonic() - started)}"
    )
    # It installs and reboots by itself; the trial boot of A answers SSH too: wait for a boot
    # of slot B that is not this one.
    began = time.monotonic()
    while True:
        assert time.monotonic() - began < 1200, "never came back to slot B"
        time.sleep(5)
        try:
            machine.wait_for_ssh(timeout=600)
            if appliance.boot_id() != boot and appliance.slot() == "b":
                break
        except (AssertionError, subprocess.TimeoutExpired):
            continue  # between boots
    appliance.figures["broken_update_back_on_b_s"] = round(time.monotonic() - began, 1)
    appliance.progress(f"qemu: back on slot B after {minutes(time.monotonic() - began)}")
    assert appliance.settled() == "running"
    # In between, slot A booted once and failed its health check.
    boots = sh("journalctl --list-boots --no-pager").strip().splitlines()
    assert len(boots) == boots_before + 2, boots
    installed = sh("journalctl -b -1 -u plantd-update --no-pager -o cat; "
                   "journalctl -b -2 -u plantd-update --no-pager -o cat")  # fmt: skip
    assert "rebooting" in installed.lower(), installed
    trial = sh("journalctl -b -1 -u plantd-boot-check --no-pager -o cat")
    assert "slot a is not healthy after 60 s" in trial, trial
    assert "rebooting into slot b" in trial, trial
    assert "plantd.slot=a" in sh("journalctl -b -1 -k --no-pager -o cat | head -n 5")
    expected = {"booted": "b", "primary": "b", "slots": {"a": "bad", "b": "good"}}
    assert appliance.slots() == expected
    # What the proxy shows: the slots, and the update settled as failed (it did not stay).
    status = json.loads(sh("cat /var/lib/plantd/update/status.json"))
    assert status["state"] == "failed", status
    assert plant("state", "get", "test", "setpoint").strip() == "44.5"
    assert appliance.identity() == identity
    assert sh("ls /var/lib/plantd/update/").split() == ["slots.json", "status.json"]


def test_boot_partition_after_all_that(appliance: Appliance) -> None:
    appliance.machine.close()
    names = list_boot_partition(appliance.machine.prepared.disk)
    assert "plantd-provision.yaml.imported" in names
    # B (kept) and A's failed trial, with both kernels.
    entries = sorted(name for name in names if name.startswith("loader/entries/"))
    assert entries == ["loader/entries/plantd-2-b.conf", "loader/entries/plantd-3-a+0-1.conf"]
    assert {"a/vmlinuz", "a/initrd.img", "b/vmlinuz", "b/initrd.img"} <= set(names)
