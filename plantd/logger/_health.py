"""Is the plant's software healthy? ``org.plantd.Health`` and ``GET /health``, judged from the
metrics snapshots the hub keeps (:mod:`plantd.logger._metrics`).

The verdict comes from :func:`judge`, a pure function of the snapshots, the time and what is
configured, so every rule is tested with explicit numbers and times. One entry per source
seen since the logger started, per configured module (``module.<name>``, whether it runs in
the module host or alone) and for the data partition (``disk``); each is ``ok``,
``degraded`` (works, needs a look) or ``failed`` (does not do its job), with its reasons:

- any source: a snapshot older than 3 intervals → failed, ``not reporting for N s``; the
  broker never seen → failed, ``not reporting`` — or, while the logger itself has run less
  than 3 intervals (``waiting_until``), degraded ``no report yet``: a process started with the
  logger has not had the time to publish its first snapshot;
- a module: never seen → failed ``not reporting`` (degraded ``no report yet`` likewise);
  ``plantd_module_connected`` 0 → failed ``not connected``; units quarantined → degraded;
  late polls more than in the snapshot before → degraded;
- a sink: not connected → degraded (it keeps what it cannot send); its backlog grown in each
  of the last :data:`GROWING` snapshots, or its oldest undelivered sample older than
  :data:`OLDEST_SAMPLE` → degraded;
- the data partition: less than 10 % free → degraded, less than 2 % → failed.

The overall verdict is the worst entry's; ``ok`` is true only when it is ``ok``.

Operation ``check`` (access ``read``): ``{"ok", "verdict", "services": [{"name", "verdict",
"reasons"}]}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from plantd.logger._metrics import FRESH_INTERVALS, LOGGER_SOURCE, MetricsHub, Snapshot
from plantd.logger._system import DiskUsage
from plantd.service import Json, Params, ServiceDefinition

__all__ = [
    "DISK_DEGRADED",
    "DISK_FAILED",
    "GROWING",
    "OLDEST_SAMPLE",
    "SERVICE",
    "HealthReport",
    "ServiceHealth",
    "Verdict",
    "configured_modules",
    "health_service",
    "judge",
    "judge_hub",
]

SERVICE = "org.plantd.Health"

Verdict = Literal["ok", "degraded", "failed"]
_RANK: dict[Verdict, int] = {"ok": 0, "degraded": 1, "failed": 2}

DISK_DEGRADED = 0.10  # free fraction of the data partition below which it is degraded
DISK_FAILED = 0.02  # … and failed
OLDEST_SAMPLE = 300.0  # seconds a sink's oldest undelivered sample may wait
GROWING = 3  # snapshots in a row whose sink backlog rose each time: a backlog growing

BROKER = "broker"
MODULE_HOST = "modules"
DISK = "disk"


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    name: str
    verdict: Verdict
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Json]:
        return {"name": self.name, "verdict": self.verdict, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class HealthReport:
    services: tuple[ServiceHealth, ...]

    @property
    def verdict(self) -> Verdict:
        return _worst(service.verdict for service in self.services)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def service(self, name: str) -> ServiceHealth | None:
        return next((entry for entry in self.services if entry.name == name), None)

    def to_json(self) -> dict[str, Json]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "services": [service.to_json() for service in self.services],
        }


@dataclass
class _Findings:
    """What the rules found about one entry: (verdict, reason) pairs."""

    found: list[tuple[Verdict, str]] = field(default_factory=list)

    def add(self, verdict: Verdict, reason: str) -> None:
        self.found.append((verdict, reason))

    def entry(self, name: str) -> ServiceHealth:
        return ServiceHealth(
            name, _worst(v for v, _ in self.found), tuple(reason for _, reason in self.found)
        )


def _worst(verdicts: Iterable[Verdict]) -> Verdict:
    return max(verdicts, key=_RANK.__getitem__, default="ok")


def judge(
    history: Mapping[str, Sequence[Snapshot]],
    now: float,
    *,
    modules: Iterable[str] = (),
    disk: DiskUsage | None = None,
    waiting_until: float = float("-inf"),
) -> HealthReport:
    """The health of everything ``history`` (source → its last snapshots, oldest first) and
    the configuration show, at ``now`` (the snapshots' monotonic scale).

    ``modules`` are the configured modules' names; ``disk`` the data partition (None: not
    judged). The logger's own source is ``ok``: it is answering. Before ``waiting_until``,
    what has never reported is only waited for.
    """
    never_seen = _never_seen(now, waiting_until)
    findings: dict[str, _Findings] = {BROKER: _Findings()}
    for source, snapshots in history.items():
        if not snapshots:
            continue
        found = findings.setdefault(source, _Findings())
        latest = snapshots[-1]
        if not latest.fresh(now):
            found.add("failed", _silent(latest, now))
        elif source.startswith("sink."):
            _judge_sink(found, source.removeprefix("sink."), snapshots)
    if not history.get(BROKER):
        findings[BROKER].add(*never_seen)
    for module in sorted({*modules, *_modules_seen(history)}):
        name = f"module.{module}"
        found = findings.setdefault(name, _Findings())
        if name not in history:  # hosted, or never seen: the isolated case is judged above
            _judge_hosted(found, history.get(MODULE_HOST, ()), module, now, never_seen)
        elif history[name] and history[name][-1].fresh(now):
            _judge_module(found, history[name], module)
    findings.setdefault(LOGGER_SOURCE, _Findings())
    if disk is not None:
        _judge_disk(findings.setdefault(DISK, _Findings()), disk)
    return HealthReport(tuple(findings[name].entry(name) for name in sorted(findings)))


def _never_seen(now: float, waiting_until: float) -> tuple[Verdict, str]:
    """The finding for what has never reported: failed, unless it is early days."""
    return ("degraded", "no report yet") if now < waiting_until else ("failed", "not reporting")


def _silent(snapshot: Snapshot, now: float) -> str:
    return f"not reporting for {snapshot.age(now):.0f} s"


def _modules_seen(history: Mapping[str, Sequence[Snapshot]]) -> set[str]:
    """Modules the module host reports, and isolated modules that report themselves."""
    seen = {source.removeprefix("module.") for source in history if source.startswith("module.")}
    host = history.get(MODULE_HOST)
    if host:
        seen.update(
            labels["module"]
            for labels, _ in host[-1].series("plantd_module_connected")
            if labels.get("module")
        )
    return seen


def _judge_hosted(
    found: _Findings,
    host: Sequence[Snapshot],
    module: str,
    now: float,
    never_seen: tuple[Verdict, str],
) -> None:
    """A module the module host runs (or should run)."""
    if not host or host[-1].value("plantd_module_connected", module=module) is None:
        found.add(*never_seen)
    elif not host[-1].fresh(now):
        found.add("failed", f"{_silent(host[-1], now)} (plantd-modules)")
    else:
        _judge_module(found, host, module)


def _judge_module(found: _Findings, snapshots: Sequence[Snapshot], module: str) -> None:
    latest = snapshots[-1]
    if latest.value("plantd_module_connected", module=module) == 0:
        found.add("failed", "not connected")
    quarantined = latest.value("plantd_module_units_quarantined", module=module) or 0
    if quarantined > 0:
        units = "unit" if quarantined == 1 else "units"
        found.add("degraded", f"{quarantined:.0f} {units} quarantined")
    if len(snapshots) >= 2:
        before = snapshots[-2].value("plantd_module_late_polls_total", module=module)
        after = latest.value("plantd_module_late_polls_total", module=module)
        if before is not None and after is not None and after > before:
            found.add(
                "degraded",
                f"{after - before:.0f} late polls in the last "
                f"{latest.arrived - snapshots[-2].arrived:.0f} s",
            )


def _judge_sink(found: _Findings, sink: str, snapshots: Sequence[Snapshot]) -> None:
    latest = snapshots[-1]
    if latest.value("plantd_sink_connected", sink=sink) == 0:
        found.add("degraded", "not connected")
    backlog = [snapshot.value("plantd_sink_backlog_samples", sink=sink) for snapshot in snapshots]
    last = [value for value in backlog[-GROWING:] if value is not None]
    if len(last) == GROWING and all(a < b for a, b in itertools.pairwise(last)):
        found.add("degraded", f"backlog growing: {last[-1]:.0f} samples")
    oldest = latest.value("plantd_sink_oldest_sample_age_seconds", sink=sink)
    if oldest is not None and oldest > OLDEST_SAMPLE:
        found.add("degraded", f"oldest undelivered sample is {oldest:.0f} s old")


def _judge_disk(found: _Findings, disk: DiskUsage) -> None:
    free = disk.free_fraction
    where = f"{free:.1%} free on the data partition ({disk.path})"
    if free < DISK_FAILED:
        found.add("failed", where)
    elif free < DISK_DEGRADED:
        found.add("degraded", where)


def configured_modules(config_dir: Path | None) -> list[str]:
    """The names of the modules configured in ``config_dir/modules.d`` (file names)."""
    from plantd.module import module_files  # with the module runtime: only when asked

    return [path.stem for path in module_files(config_dir)]


def judge_hub(
    hub: MetricsHub, modules: Callable[[], Iterable[str]] = tuple
) -> Callable[[], HealthReport]:
    """A function judging ``hub``'s snapshots now, the configured modules read from
    ``modules`` each time (the module files may change while the logger runs)."""

    def check() -> HealthReport:
        disk = hub.system.disk() if hub.system is not None else None
        waiting_until = hub.started + FRESH_INTERVALS * hub.default_interval
        return judge(
            hub.history(), hub.now(), modules=modules(), disk=disk, waiting_until=waiting_until
        )

    return check


def health_service(check: Callable[[], HealthReport]) -> ServiceDefinition:
    """``org.plantd.Health``, answering with what ``check`` says."""
    definition = ServiceDefinition(SERVICE, "Is the plant's software healthy?")

    @definition.operation("check", access="read")
    async def _check(params: Params) -> Json:
        """The verdict of every process, module, sink and the data partition, judged from
        their metrics: {"ok", "verdict": "ok|degraded|failed", "services": [{"name",
        "verdict", "reasons"}]}."""
        return check().to_json()

    return definition
