"""Helpers shared by the security tests: key files written the way plantd writes them, and a
configuration directory to load."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from plantd.config import PlantdConfig, load_config
from plantd.security import KeyFile, generate, write_key_file


def admit(keys_dir: Path, principal: str, **metadata: str) -> KeyFile:
    """A fresh key pair whose public half admits ``principal`` (metadata ``principal`` set
    unless given); returns both halves."""
    key = generate({"principal": principal, **metadata})
    write_key_file(keys_dir / f"{principal}.key", key, secret=False)
    return key


def write_config(base: Path, **sections: dict[str, Any]) -> PlantdConfig:
    """``base/etc/plantd.yaml`` with ``paths.data`` in ``base/data`` (plus ``sections``),
    loaded."""
    etc = base / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"paths": {"data": str(base / "data")}, **sections}
    (etc / "plantd.yaml").write_text(yaml.safe_dump(data))
    return load_config(etc, {})


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.005)
    return True
