"""config/monitoring/, what a site's central monitoring stack takes from plantd: Prometheus's
config and alerting rules pass ``promtool`` (and the alerts fire on the series they are about,
``promtool test rules``), every PromQL expression of the rules and the Grafana dashboard parses
and names only metrics of docs/observability.md's catalogue, the dashboards are sound Grafana
JSON, and the log shippers (Alloy, Promtail) read plantd's journal fields into the labels the
logs dashboard selects on.

``promtool`` comes with Debian's ``prometheus`` package (tests/deps.sh installs it as root);
without it, and not root, the promtool checks are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "config" / "monitoring"
CATALOGUE = ROOT / "docs" / "observability.md"
DASHBOARDS = sorted((MONITORING / "grafana").glob("*.json"))
OVERVIEW = MONITORING / "grafana" / "plantd-overview.json"
LOGS = MONITORING / "grafana" / "plantd-logs.json"

METRIC = re.compile(r"\bplantd_[a-z0-9_]+\b")
# Grafana's variables, as a query would have them substituted.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("promtool is missing (as root, tests/deps.sh installs Debian's prometheus)")
    pytest.fail("promtool is missing: tests/deps.sh (run by make pytest as root) installs it")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules()}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [
        target["expr"]
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def substituted(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr.replace("$value", ""), f"an unknown Grafana variable in {expr!r}"
    return expr


def balanced(expr: str) -> bool:
    """Brackets pair up outside string literals."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    quote = ""
    escaped = False
    for char in expr:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack and not quote


def catalogue_series(text: str) -> set[str]:
    """The series names the catalogue's metrics are exposed as: a histogram's ``_bucket``,
    ``_sum`` and ``_count``, a counter's ``_total`` (if the table names it without)."""
    names: set[str] = set()
    for line in text.splitlines():
        kind = line.lower()
        for name in METRIC.findall(line):
            names.add(name)
            if "histogram" in kind:
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
            if "counter" in kind and not name.endswith("_total"):
                names.add(f"{name}_total")
    return names


# -- Prometheus ------------------------------------------------------------------------------


def test_the_alert_rules_pass_promtool() -> None:
    done = run_promtool("check", "rules", str(MONITORING / "alerts.yml"))
    assert "SUCCESS" in done.stdout + done.stderr


def test_the_prometheus_config_passes_promtool_and_scrapes_plantd_logger() -> None:
    run_promtool("check", "config", str(MONITORING / "prometheus.yml"))
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "plantd"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9798"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["scrape_interval"] == "15s"


def test_every_alert_says_what_and_where() -> None:
    expected = {
        "PlantdDiskNearlyFull": "plantd_disk_free_bytes / plantd_disk_size_bytes < 0.1",
        "PlantdSinkBacklogGrowing": "deriv(plantd_sink_backlog_samples[10m]) > 0",
        "PlantdSinkOldestSampleOld": "plantd_sink_oldest_sample_age_seconds",
        "PlantdModuleLate": "rate(plantd_module_late_polls_total[5m]) > 0",
        "PlantdModuleUnitQuarantined": "plantd_module_units_quarantined > 0",
        "PlantdProcessDown": "plantd_process_up == 0",
        "PlantdModuleNotConnected": "plantd_module_connected == 0",
    }
    found = alerts()
    for name, fragment in expected.items():
        assert name in found, f"no alert {name} in alerts.yml"
        assert fragment in found[name]["expr"], (name, found[name]["expr"])
    assert "plantd_sink_backlog_samples > 1000" in found["PlantdSinkBacklogGrowing"]["expr"]
    assert found["PlantdModuleUnitQuarantined"]["for"] == "2m"
    for name, rule in found.items():
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        # An alert on a module's, a sink's or a process's series names it.
        text = annotations["summary"] + annotations["description"]
        for label in ("module", "sink", "source"):
            if f"plantd_{label}_" in rule["expr"] or (label == "source" and "process" in name):
                assert f"$labels.{label}" in text, f"{name} does not name its {label}"


ALERT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'plantd_disk_free_bytes{{path="/data", source="logger"}}'
        values: '5+0x30'
      - series: 'plantd_disk_size_bytes{{path="/data", source="logger"}}'
        values: '100+0x30'
      - series: 'plantd_sink_backlog_samples{{sink="up", source="sink.up"}}'
        values: '900+100x40'
      - series: 'plantd_sink_oldest_sample_age_seconds{{sink="up", source="sink.up"}}'
        values: '3000+60x40'
      - series: 'plantd_sink_connected{{sink="up", source="sink.up"}}'
        values: '0+0x30'
      - series: 'plantd_module_late_polls_total{{module="boiler", group="fast", source="modules"}}'
        values: '0+6x30'
      - series: 'plantd_module_units_quarantined{{module="boiler", source="modules"}}'
        values: '0 0 1+0x10'
      - series: 'plantd_module_connected{{module="pump", source="modules"}}'
        values: '1 0+0x10'
      - series: 'plantd_process_up{{source="historian"}}'
        values: '1 1 0+0x10'
      - series: 'plantd_process_up{{source="state"}}'
        values: '1+0x30'
    alert_rule_test:
      - alertname: PlantdDiskNearlyFull
        eval_time: 11m
        exp_alerts:
          - exp_labels: {{severity: warning, path: /data, source: logger}}
      - alertname: PlantdSinkBacklogGrowing
        eval_time: 25m
        exp_alerts:
          - exp_labels: {{severity: warning, sink: up, source: sink.up}}
      - alertname: PlantdSinkOldestSampleOld
        eval_time: 20m
        exp_alerts:
          - exp_labels: {{severity: warning, sink: up, source: sink.up}}
      - alertname: PlantdSinkNotConnected
        eval_time: 11m
        exp_alerts:
          - exp_labels: {{severity: warning, sink: up, source: sink.up}}
      - alertname: PlantdModuleLate
        eval_time: 20m
        exp_alerts:
          - exp_labels: {{severity: warning, module: boiler, group: fast, source: modules}}
      - alertname: PlantdModuleUnitQuarantined
        eval_time: 3m
        exp_alerts: []
      - alertname: PlantdModuleUnitQuarantined
        eval_time: 5m
        exp_alerts:
          - exp_labels: {{severity: warning, module: boiler, source: modules}}
      - alertname: PlantdModuleNotConnected
        eval_time: 4m
        exp_alerts:
          - exp_labels: {{severity: warning, module: pump, source: modules}}
      - alertname: PlantdProcessDown
        eval_time: 4m
        exp_alerts:
          - exp_labels: {{severity: critical, source: historian}}
      - alertname: PlantdMetricsMissing
        eval_time: 4m
        exp_alerts: []
"""


def test_the_alerts_fire_on_the_series_they_watch(tmp_path: Path) -> None:
    """Expressions and ``for`` durations; the annotations are left out (promtool would compare
    their rendered text; ``check rules`` has checked their templates)."""
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "alerts.yml"
    bare.write_text(yaml.safe_dump(document))
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(ALERT_TESTS.format(rules=json.dumps(str(bare))))
    run_promtool("test", "rules", str(tests))


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    """promtool has no expression check of its own: each query becomes a recording rule."""
    exprs = dashboard_exprs(OVERVIEW)
    assert exprs
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"plantd:dashboard_query_{n}", "expr": substituted(expr)}
                    for n, expr in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(recording))
    run_promtool("check", "rules", str(path))


# -- every metric named is in the catalogue ---------------------------------------------------


def all_exprs() -> list[str]:
    return [rule["expr"] for rule in rules()] + dashboard_exprs(OVERVIEW)


def test_the_queries_are_well_formed() -> None:
    exprs = all_exprs() + dashboard_exprs(LOGS)
    assert exprs
    for expr in exprs:
        assert balanced(expr), f"unbalanced brackets or quotes: {expr!r}"
    for expr in all_exprs():
        assert METRIC.search(expr), f"no plantd metric in {expr!r}"


def test_every_metric_named_is_in_the_catalogue() -> None:
    if not CATALOGUE.exists():
        pytest.skip(f"{CATALOGUE.relative_to(ROOT)} (the metric catalogue) does not exist yet")
    known = catalogue_series(CATALOGUE.read_text())
    assert known, f"no plantd_ metric names found in {CATALOGUE}"
    used = {name for expr in all_exprs() for name in METRIC.findall(expr)}
    unknown = sorted(used - known)
    assert not unknown, f"not in {CATALOGUE.relative_to(ROOT)}: {unknown}"


def test_the_catalogue_parser_knows_counters_and_histograms() -> None:
    known = catalogue_series(
        "| `plantd_sink_delivered_total{sink}` | counter | |\n"
        "| `plantd_x_requests` | counter | |\n"
        "| `plantd_state_commit_seconds` | histogram | |\n"
        "| `plantd_disk_free_bytes{path}` | gauge | |\n"
    )
    assert {"plantd_sink_delivered_total", "plantd_x_requests_total"} <= known
    assert "plantd_state_commit_seconds_bucket" in known
    assert "plantd_disk_free_bytes_total" not in known
    assert "plantd_sink_delivered_total_total" not in known


# -- Grafana -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_each_dashboard_is_sound_grafana_json(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in panels(dashboard):
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            # Every query goes to the data source the variable picks.
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["refId"]
    refs = [t["refId"] for p in panels(dashboard) for t in p.get("targets", [])]
    assert refs


def test_the_overview_shows_what_a_site_watches() -> None:
    variables = json.loads(OVERVIEW.read_text())["templating"]["list"]
    assert {"name": "datasource", "query": "prometheus"}.items() <= variables[0].items()
    text = "\n".join(dashboard_exprs(OVERVIEW))
    for needed in (
        "plantd_process_up",
        "rate(plantd_module_polls_total",
        "rate(plantd_module_late_polls_total",
        "histogram_quantile(0.95, sum by (module, le) (rate(plantd_module_request_seconds_bucket",
        "plantd_module_units_quarantined",
        "rate(plantd_module_samples_published_total",
        "plantd_sink_backlog_samples",
        "plantd_sink_oldest_sample_age_seconds",
        "rate(plantd_broker_requests_total",
        "by (code) (rate(plantd_broker_errors_total",
        "plantd_broker_queue_depth",
        "histogram_quantile(0.95, sum by (le) (rate(plantd_state_commit_seconds_bucket",
        "rate(plantd_historian_samples_total",
        "plantd_disk_free_bytes",
        "by (level) (rate(plantd_logger_records_total",
    ):
        assert needed in text, f"the overview has no query with {needed!r}"


def test_the_logs_dashboard_selects_plantds_journal_by_service_and_module() -> None:
    dashboard = json.loads(LOGS.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "loki"
    assert {"service", "module"} <= set(variables)
    logs = [panel for panel in panels(dashboard) if panel["type"] == "logs"]
    assert logs
    for panel in logs:
        (target,) = panel["targets"]
        expr = target["expr"]
        assert expr.startswith('{job="plantd"'), expr
        assert 'service=~"$service"' in expr
        assert 'module=~"$module"' in expr


# -- log shippers ------------------------------------------------------------------------------

JOURNAL_LABELS = {
    "__journal_plantd_service": "service",
    "__journal_plantd_module": "module",
    "__journal_priority": "priority",
}


def test_promtail_reads_the_journal_into_the_dashboards_labels() -> None:
    config = yaml.safe_load((MONITORING / "promtail.yml").read_text())
    assert config["clients"][0]["url"].endswith("/loki/api/v1/push")
    (job,) = config["scrape_configs"]
    assert job["journal"]["labels"]["job"] == "plantd"
    relabels = job["relabel_configs"]
    keep = [r for r in relabels if r.get("action") == "keep"]
    assert keep
    assert keep[0]["source_labels"] == ["__journal__systemd_unit"]
    assert re.fullmatch(keep[0]["regex"], "plantd-module@boiler.service")
    assert not re.fullmatch(keep[0]["regex"], "ssh.service")
    targets = {
        r["source_labels"][0]: r.get("target_label") for r in relabels if "target_label" in r
    }
    for field, label in JOURNAL_LABELS.items():
        assert targets.get(field) == label, field


def alloy_blocks(text: str) -> dict[str, str]:
    """``kind "label"`` → its body, for the top-level blocks of an Alloy config."""
    text = re.sub(r"(?m)^\s*//[^\n]*", "", text)
    assert balanced(text), "unbalanced braces or quotes in config.alloy"
    blocks: dict[str, str] = {}
    for match in re.finditer(r'^([a-z_.]+) "([a-z_]+)" \{', text, re.MULTILINE):
        depth, start = 0, match.end() - 1
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        blocks[f"{match[1]}.{match[2]}"] = text[start + 1 : end]
    return blocks


def test_alloy_reads_the_journal_into_the_dashboards_labels() -> None:
    blocks = alloy_blocks((MONITORING / "alloy" / "config.alloy").read_text())
    journal = blocks["loki.source.journal.plantd"]
    assert re.search(r'labels\s*=\s*\{\s*job\s*=\s*"plantd"\s*\}', journal)
    assert "loki.relabel.plantd_journal.rules" in journal
    assert "loki.write.central.receiver" in journal
    assert re.search(r'url\s*=\s*"http[^"]+/loki/api/v1/push"', blocks["loki.write.central"])
    relabel = blocks["loki.relabel.plantd_journal"]
    assert re.search(r'regex\s*=\s*"plantd-\.\*"\s*action\s*=\s*"keep"', relabel)
    for field, label in JOURNAL_LABELS.items():
        pattern = rf'source_labels\s*=\s*\["{field}"\]\s*target_label\s*=\s*"{label}"'
        assert re.search(pattern, relabel), f"{field} is not relabelled to {label}"
