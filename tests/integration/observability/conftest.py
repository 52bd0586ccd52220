"""Helpers for the end-to-end observability tests: a stack's processes started as they are
on a box (``plantd-logger``, ``plant module run``, ``plant logs -f``), waited for by what
they say, never by sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from plantd.logger._http import read_endpoints
from plantd.testing import ManagedProcess, wait_for_workers
from tests.conftest import Stack

__all__ = ["start_logger", "start_module", "until", "write_module"]

T = TypeVar("T")


def until(condition: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """The first true value of ``condition()``, polled until ``timeout``; AssertionError
    naming ``what`` after that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)


def start_logger(stack: Stack) -> tuple[ManagedProcess, dict[str, Any]]:
    """``plantd-logger`` from the stack's config, once it serves ``org.plantd.Logger``; and
    the endpoints it recorded in ``<paths.run>/logger-endpoints.json`` (this process's, not
    a killed one's), when its config serves metrics (``logger.listen``)."""
    process = ManagedProcess.plantd(
        ["plantd.logger", "--config", str(stack.config_dir)], name="logger", log_dir=stack.log_dir
    ).start()
    stack.processes.append(process)
    wait_for_workers(stack.endpoint, "org.plantd.Logger")
    if not stack.settings["logger"].get("listen"):
        return process, {}
    run_dir = Path(stack.settings["paths"]["run"])

    def recorded() -> dict[str, Any] | None:
        if not process.running():
            raise AssertionError(f"plantd-logger exited:\n{process.log_text()[-2000:]}")
        endpoints = read_endpoints(run_dir)
        return endpoints if endpoints and endpoints.get("pid") == process.pid else None

    return process, until(recorded, "plantd-logger records its metrics endpoint", 15.0)


def write_module(stack: Stack, name: str, text: str) -> Path:
    modules = stack.config_dir / "modules.d"
    modules.mkdir(exist_ok=True)
    path = modules / f"{name}.yaml"
    path.write_text(text)
    return path


def start_module(stack: Stack, name: str) -> ManagedProcess:
    """``plant module run NAME``: the module isolated, in a process of its own."""
    process = ManagedProcess.plantd(
        ["plantd.cli", "--config", str(stack.config_dir), "module", "run", name],
        name=f"module-{name}",
        log_dir=stack.log_dir,
    ).start()
    stack.processes.append(process)
    return process
