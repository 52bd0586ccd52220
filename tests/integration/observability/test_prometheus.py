"""The metrics path end to end, as a site runs it: a broker, ``plantd-logger`` and a module
(the fake driver, ``plant module run``) as real processes; their metrics scraped from the
logger's endpoint pass ``promtool check metrics``, and a real Prometheus scraping it every
second answers queries on the module's polls and on who is up."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from plantd.testing import ManagedProcess, wait_for_listening_port
from tests.conftest import Stack
from tests.integration.observability.conftest import (
    start_logger,
    start_module,
    until,
    write_module,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("promtool")),
        reason="prometheus and promtool are not installed (tests/deps.sh installs them)",
    ),
]

DEMO = """
driver: fake
groups:
  - name: main
    interval: 100ms
    points:
      - {name: flow, value: 1.5, pattern: sine}
      - {name: total, value: 0, pattern: counter}
"""


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name{labels…}`` (other labels ignored) in exposition ``text``."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                return float(s.value)
    return None


def ready(prometheus: str) -> bool:
    """Prometheus listens before it serves queries (503 until its storage is open)."""
    try:
        get(f"{prometheus}/-/ready")
    except urllib.error.HTTPError as error:
        with error:
            if error.code == 503:
                return False
            raise
    return True


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector Prometheus's HTTP API answers for ``expr``."""
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    answer = json.loads(get(url))
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value_of(prometheus: str, expr: str) -> float | None:
    """The one sample's value of ``expr`` now (None: no such series yet)."""
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


@pytest.mark.stack(metrics={"interval": 0.5}, logger={"listen": "127.0.0.1:0"})
def test_a_real_prometheus_scrapes_the_stack(stack: Stack, tmp_path: Path) -> None:
    stack.start_broker()
    _, endpoints = start_logger(stack)
    write_module(stack, "demo", DEMO)
    start_module(stack, "demo")
    metrics_url = endpoints["metrics"]

    # (a) The merged endpoint has the module's polls, and promtool finds nothing to lint.
    def scraped() -> str | None:
        text = get(metrics_url).decode()
        polls = sample(text, "plantd_module_polls_total", module="demo")
        return text if polls else None

    text = until(scraped, 'plantd_module_polls_total{module="demo"} on /metrics')
    assert sample(text, "plantd_module_polls_total", module="demo", source="module.demo")
    lint = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", ""), text

    # (b) A real Prometheus scraping it every second.
    target = urllib.parse.urlsplit(metrics_url)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "plantd",
                        "metrics_path": target.path,
                        "static_configs": [{"targets": [target.netloc]}],
                    }
                ],
            }
        )
    )
    prometheus = ManagedProcess(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            "--web.listen-address=127.0.0.1:0",
        ],
        name="prometheus",
        log_dir=stack.log_dir,
    ).start()
    stack.processes.append(prometheus)  # killed with the stack, its log shown on failure
    api = f"http://127.0.0.1:{wait_for_listening_port(prometheus)}"
    until(lambda: ready(api), "Prometheus is ready", 60.0)

    def polled() -> float | None:
        polls = value_of(api, 'plantd_module_polls_total{module="demo"}')
        return polls if polls is not None and polls > 0 else None

    until(polled, "Prometheus has the demo module's polls, > 0", 60.0)
    assert value_of(api, 'plantd_process_up{source="broker"}') == 1
    assert value_of(api, 'plantd_process_up{source="module.demo"}') == 1
    health = query(api, 'up{job="plantd"}')
    assert [float(series["value"][1]) for series in health] == [1]
