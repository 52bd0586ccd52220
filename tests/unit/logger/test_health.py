"""The health rules, fed explicit snapshots and times (``judge`` is a pure function)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from plantd.bus import BusMessage, Record
from plantd.logger._health import (
    HealthReport,
    configured_modules,
    health_service,
    judge,
    judge_hub,
)
from plantd.logger._metrics import MetricsHub, Snapshot, parse_snapshot
from plantd.logger._system import DiskUsage, SystemCollector
from plantd.testing import ManualClock

INTERVAL = 5.0
NOW = 1000.0
HALF_FULL = DiskUsage("/var/lib/plantd", 50, 100)


def snap(source: str, text: str = "", *, at: float = NOW, interval: float = INTERVAL) -> Snapshot:
    return parse_snapshot(
        source, {"text": text, "interval": interval}, arrived=at, default_interval=INTERVAL
    )


def gauges(**series: float) -> str:
    """``name__label_value=v`` → a gauge sample line each: ``connected__boiler=1``."""
    lines = []
    for key, value in series.items():
        name, _, label = key.partition("__")
        kind = "module" if name.startswith("plantd_module") else "sink"
        lines.append(f'{name}{{{kind}="{label}"}} {value}')
    return "\n".join(lines) + "\n"


def host(text: str, *, at: float = NOW) -> Snapshot:
    return snap("modules", text, at=at)


def healthy(**more: Sequence[Snapshot]) -> dict[str, Sequence[Snapshot]]:
    history: dict[str, Sequence[Snapshot]] = {
        "broker": [snap("broker")],
        "state": [snap("state")],
        "historian": [snap("historian")],
    }
    history.update(more)
    return history


def entries(report: HealthReport) -> dict[str, tuple[str, list[str]]]:
    return {s.name: (s.verdict, list(s.reasons)) for s in report.services}


def test_everything_fresh_and_connected_is_ok() -> None:
    history = healthy(modules=[host(gauges(plantd_module_connected__boiler=1))])
    report = judge(history, NOW + 1, modules=["boiler"], disk=HALF_FULL)
    assert report.to_json() == {
        "ok": True,
        "verdict": "ok",
        "services": [
            {"name": name, "verdict": "ok", "reasons": []}
            for name in (
                "broker",
                "disk",
                "historian",
                "logger",
                "module.boiler",
                "modules",
                "state",
            )
        ],
    }


def test_a_source_silent_for_more_than_three_intervals_is_failed() -> None:
    history = healthy(state=[snap("state", at=NOW - 20)])
    at_the_limit = judge(history, NOW - 20 + 3 * INTERVAL)
    assert at_the_limit.ok
    report = judge(history, NOW)
    assert entries(report)["state"] == ("failed", ["not reporting for 20 s"])
    assert (report.ok, report.verdict) == (False, "failed")


def test_no_broker_snapshot_is_failed() -> None:
    history = healthy()
    del history["broker"]
    report = judge(history, NOW)
    assert entries(report)["broker"] == ("failed", ["not reporting"])
    assert report.verdict == "failed"


def test_a_configured_module_never_seen_is_failed() -> None:
    history = healthy(modules=[host(gauges(plantd_module_connected__boiler=1))])
    report = entries(judge(history, NOW, modules=["boiler", "pump"]))
    assert report["module.pump"] == ("failed", ["not reporting"])
    assert report["module.boiler"] == ("ok", [])
    without_host = entries(judge(healthy(), NOW, modules=["pump"]))
    assert without_host["module.pump"] == ("failed", ["not reporting"])


def test_what_never_reported_is_waited_for_until_the_logger_has_run_three_intervals() -> None:
    history = healthy()
    del history["broker"]
    early = entries(judge(history, NOW, modules=["pump"], waiting_until=NOW + 1))
    assert early["broker"] == ("degraded", ["no report yet"])
    assert early["module.pump"] == ("degraded", ["no report yet"])
    late = entries(judge(history, NOW + 1, modules=["pump"], waiting_until=NOW + 1))
    assert late["broker"] == ("failed", ["not reporting"])
    assert late["module.pump"] == ("failed", ["not reporting"])
    # A source that did report and fell silent is not waited for.
    silent = healthy(state=[snap("state", at=NOW - 20)])
    assert entries(judge(silent, NOW, waiting_until=NOW + 1))["state"][0] == "failed"


def test_module_rules_not_connected_quarantined_and_late_polls() -> None:
    before = host(
        gauges(
            plantd_module_connected__boiler=1,
            plantd_module_connected__pump=1,
            plantd_module_late_polls_total__boiler=2,
        ),
        at=NOW - INTERVAL,
    )
    after = host(
        gauges(
            plantd_module_connected__boiler=1,
            plantd_module_connected__pump=0,
            plantd_module_units_quarantined__boiler=2,
            plantd_module_late_polls_total__boiler=5,
        )
    )
    report = judge(healthy(modules=[before, after]), NOW, modules=["boiler", "pump"])
    assert entries(report)["module.boiler"] == (
        "degraded",
        ["2 units quarantined", "3 late polls in the last 5 s"],
    )
    assert entries(report)["module.pump"] == ("failed", ["not connected"])
    assert report.verdict == "failed"
    steady = host(
        gauges(plantd_module_connected__boiler=1, plantd_module_late_polls_total__boiler=5)
    )
    assert entries(judge(healthy(modules=[after, steady]), NOW))["module.boiler"] == ("ok", [])


def test_late_polls_summed_over_groups() -> None:
    def late(fast: int, slow: int) -> str:
        return (
            'plantd_module_connected{module="m"} 1\n'
            f'plantd_module_late_polls_total{{module="m",group="fast"}} {fast}\n'
            f'plantd_module_late_polls_total{{module="m",group="slow"}} {slow}\n'
        )

    history = healthy(modules=[host(late(1, 1), at=NOW - 5), host(late(2, 1))])
    assert entries(judge(history, NOW))["module.m"] == (
        "degraded",
        ["1 late polls in the last 5 s"],
    )


def test_a_module_of_a_silent_host_is_failed_too() -> None:
    history = healthy(modules=[host(gauges(plantd_module_connected__boiler=1), at=NOW - 60)])
    report = entries(judge(history, NOW, modules=["boiler"]))
    assert report["modules"] == ("failed", ["not reporting for 60 s"])
    assert report["module.boiler"] == ("failed", ["not reporting for 60 s (plantd-modules)"])


def test_an_isolated_module_reports_as_its_own_source() -> None:
    fresh = snap("module.pump", gauges(plantd_module_connected__pump=0))
    report = entries(judge(healthy(**{"module.pump": [fresh]}), NOW, modules=["pump"]))
    assert report["module.pump"] == ("failed", ["not connected"])
    stale = snap("module.pump", gauges(plantd_module_connected__pump=1), at=NOW - 30)
    report = entries(judge(healthy(**{"module.pump": [stale]}), NOW, modules=["pump"]))
    assert report["module.pump"] == ("failed", ["not reporting for 30 s"])


def sink(backlog: float, *, at: float, connected: float = 1, oldest: float = 0) -> Snapshot:
    return snap(
        "sink.cloud",
        gauges(
            plantd_sink_backlog_samples__cloud=backlog,
            plantd_sink_connected__cloud=connected,
            plantd_sink_oldest_sample_age_seconds__cloud=oldest,
        ),
        at=at,
    )


@pytest.mark.parametrize(
    ("backlogs", "verdict"),
    [
        ((10, 20, 30), ("degraded", ["backlog growing: 30 samples"])),
        ((5, 10, 20, 30), ("degraded", ["backlog growing: 30 samples"])),
        ((20, 30), ("ok", [])),  # two snapshots are a burst, not a trend
        ((10, 30, 30), ("ok", [])),
        ((30, 20, 10), ("ok", [])),
    ],
)
def test_a_sink_backlog_growing_across_the_last_snapshots_is_degraded(
    backlogs: tuple[int, ...], verdict: tuple[str, list[str]]
) -> None:
    count = len(backlogs)
    snapshots = [sink(b, at=NOW - (count - i) * INTERVAL) for i, b in enumerate(backlogs)]
    assert entries(judge(healthy(**{"sink.cloud": snapshots}), NOW))["sink.cloud"] == verdict


def test_a_sink_not_connected_or_holding_old_samples_is_degraded() -> None:
    report = judge(healthy(**{"sink.cloud": [sink(0, at=NOW, connected=0, oldest=301)]}), NOW)
    assert entries(report)["sink.cloud"] == (
        "degraded",
        ["not connected", "oldest undelivered sample is 301 s old"],
    )
    assert (report.ok, report.verdict) == (False, "degraded")
    fine = judge(healthy(**{"sink.cloud": [sink(0, at=NOW, oldest=300)]}), NOW)
    assert fine.ok


@pytest.mark.parametrize(
    ("free", "verdict"),
    [(50, "ok"), (10, "ok"), (9, "degraded"), (2, "degraded"), (1, "failed")],
)
def test_disk_space_thresholds(free: int, verdict: str) -> None:
    report = entries(judge(healthy(), NOW, disk=DiskUsage("/data", free, 100)))
    assert report["disk"][0] == verdict
    if verdict != "ok":
        assert report["disk"][1] == [f"{free / 100:.1%} free on the data partition (/data)"]


async def test_the_service_judges_the_hub_now(tmp_path: Path) -> None:
    (tmp_path / "modules.d").mkdir()
    (tmp_path / "modules.d" / "boiler.yaml").write_text("driver: fake\n")
    (tmp_path / "modules.d" / ".hidden.yaml").write_text("driver: fake\n")
    assert configured_modules(tmp_path) == ["boiler"]
    assert configured_modules(None) == []

    clock = ManualClock()
    hub = MetricsHub(
        default_interval=INTERVAL, clock=clock, own=None, system=SystemCollector(tmp_path)
    )
    hub.receive(BusMessage("metrics.broker", Record({"text": "", "interval": INTERVAL})))
    definition = health_service(judge_hub(hub, lambda: configured_modules(tmp_path)))
    check = definition.operations["check"]
    assert check.access == "read"
    result = await check.func({})  # type: ignore[misc]
    assert isinstance(result, dict)
    assert result["verdict"] == "degraded"  # the logger has just started: boiler may yet report
    services = {s["name"]: s for s in result["services"]}
    assert services["broker"]["verdict"] == "ok"
    assert services["module.boiler"]["reasons"] == ["no report yet"]
    assert "disk" in services

    await clock.advance(3 * INTERVAL + 1)
    result = await check.func({})  # type: ignore[misc]
    services = {s["name"]: s for s in result["services"]}
    assert services["module.boiler"] == {
        "name": "module.boiler",
        "verdict": "failed",
        "reasons": ["not reporting"],
    }
    assert services["broker"] == {
        "name": "broker",
        "verdict": "failed",
        "reasons": ["not reporting for 16 s"],
    }
