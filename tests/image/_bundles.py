"""Update bundles for the boot test: a deliberately broken one, made from the good one.

The good bundle's root file system (``rauc extract``, checked against the image's key ring)
is changed with debugfs — no mount — so that plantd-broker fails to start (its ExecStart is
``/bin/false``), and signed again with the same key: a release that installs fine and then
does not come up. Its own boot check gets a shorter deadline (60 s from the kernel's start
instead of 300 s), so that the test waits less for the fallback; the fallback itself is the
boot loader's, whatever the deadline.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BROKEN_BROKER = "[Service]\nExecStart=\nExecStart=/bin/false\n"
SHORT_DEADLINE = (
    "[Service]\nExecStart=\nExecStart=/opt/plantd/venv/bin/plantd-boot-check --deadline 60\n"
)
UNITS = "/usr/lib/systemd/system"


def broken_bundle(good: Path, key: Path, certificate: Path, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    content = work / "broken-bundle"
    shutil.rmtree(content, ignore_errors=True)
    subprocess.run(
        ["rauc", "extract", "--keyring", str(certificate), str(good), str(content)],
        check=True, capture_output=True,
    )  # fmt: skip
    drop_ins = {
        f"{UNITS}/plantd-broker.service.d/broken.conf": BROKEN_BROKER,
        f"{UNITS}/plantd-boot-check.service.d/deadline.conf": SHORT_DEADLINE,
    }
    requests = []
    for index, (path, text) in enumerate(drop_ins.items()):
        local = work / f"drop-in-{index}.conf"
        local.write_text(text)
        local.chmod(0o644)
        requests += [f"mkdir {Path(path).parent}", f"write {local} {path}"]
    script = work / "debugfs.cmd"
    script.write_text("\n".join(requests) + "\n")
    subprocess.run(
        ["debugfs", "-w", "-f", str(script), str(content / "root.ext4")],
        check=True, capture_output=True,
    )  # fmt: skip
    manifest = content / "manifest.raucm"
    text = manifest.read_text()
    manifest.write_text(text.replace("version=", "version=broken-", 1))
    for extra in content.iterdir():  # rauc extract may leave more than the bundle's content
        if extra.name not in ("manifest.raucm", "root.ext4"):
            extra.unlink()
    bundle = work / "broken.raucb"
    bundle.unlink(missing_ok=True)
    subprocess.run(
        ["rauc", "bundle", "--mksquashfs-args=-comp zstd -Xcompression-level 9",
         "--cert", str(certificate), "--key", str(key), str(content), str(bundle)],
        check=True, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(content)
    return bundle
