"""``plant config check`` and ``plant config show`` (plantd.cli._config_cmd).

The top-level options (``--config``, ``--json``, ``args.environ``) are set up here the way
``plantd.cli`` does, so these tests do not depend on the other subcommands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from plantd.cli import _config_cmd
from plantd.config import DEFAULT_CONFIG_DIR, PlantdConfig


def run(argv: list[str], environ: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plant")
    parser.add_argument("--config")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--log-level")
    _config_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.environ = environ or {}
    code: int = args.run(args)
    return code


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "modules.d").mkdir()
    (tmp_path / "plantd.yaml").write_text("logging:\n  level: debug\n")
    (tmp_path / "modules.d" / "pump.yaml").write_text("driver: fake\ngroups: [{name: g}]\n")
    (tmp_path / "modules.d" / "tank-2.yaml").write_text("driver: fake\n")
    (tmp_path / "modules.d" / "README").write_text("not a module\n")
    (tmp_path / "modules.d" / ".#pump.yaml").symlink_to("nowhere")  # an editor's lock file
    return tmp_path


def test_check_ok(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config", str(etc), "config", "check"]) == 0
    out, err = capsys.readouterr()
    assert out == f"config OK: {etc}: plantd.yaml, modules.d/pump.yaml, modules.d/tank-2.yaml\n"
    assert err == ""


@pytest.mark.parametrize("argv", [["--json", "config", "check"], ["config", "check", "--json"]])
def test_check_ok_json(etc: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    environ = {"PLANTD_CONFIG": str(etc), "PLANTD_LOGGING_FORMAT": "json"}
    assert run(argv, environ) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "config_dir": str(etc),
        "files": ["plantd.yaml", "modules.d/pump.yaml", "modules.d/tank-2.yaml"],
        "environment": ["PLANTD_LOGGING_FORMAT"],
    }


def test_check_ok_without_plantd_yaml_or_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(["--config", str(tmp_path), "config", "check"], {"PLANTD_LOGGING_LEVEL": "debug"}) == 0
    )
    assert capsys.readouterr().out == (
        f"config OK: {tmp_path}: no plantd.yaml (defaults), environment PLANTD_LOGGING_LEVEL\n"
    )


def test_check_reports_every_problem_on_stderr(
    etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (etc / "plantd.yaml").write_text("broker:\n  heartbeat_liveness: 1\n")
    (etc / "modules.d" / "pump.yaml").write_text("connection: {port: 502}\n")
    (etc / "modules.d" / "valve.yaml").write_text("driver: [modbus]\n")
    (etc / "modules.d" / "broken.yaml").write_text("driver: modbus\n  port: 1\n")
    (etc / "modules.d" / "empty.yaml").write_text("")
    (etc / "modules.d" / "list.yaml").write_text("- driver: modbus\n")
    (etc / "modules.d" / "old.yml").write_text("driver: modbus\n")
    (etc / "modules.d" / "a.b.yaml").write_text("driver: modbus\n")
    assert run(["--config", str(etc), "config", "check"], {"PLANTD_BROKER_ENDPONT": "x"}) == 1
    out, err = capsys.readouterr()
    mods = etc / "modules.d"
    assert out == ""
    assert err.splitlines() == [
        f"{etc}/plantd.yaml:2: broker.heartbeat_liveness: expected an integer >= 2, got 1",
        "environment PLANTD_BROKER_ENDPONT: not a plantd setting "
        "(did you mean PLANTD_BROKER_ENDPOINT?)",
        f"{mods}/old.yml: ignored: module files must end in .yaml",
        f"{mods}/a.b.yaml: module name 'a.b' (the file name) may hold only letters, digits, "
        "'-' and '_' (it names the module's service and its bus topics)",
        f"{mods}/broken.yaml:2:7: invalid YAML: mapping values are not allowed here",
        f"{mods}/empty.yaml: driver: required key is missing",
        f"{mods}/list.yaml:1: expected a mapping with keys driver, got a list",
        f"{mods}/pump.yaml:1: driver: required key is missing",
        f"{mods}/valve.yaml:1: driver: expected a string, got a list",
    ]


def test_check_failure_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plantd.yaml").write_text(
        "bus:\n  backend: tcp://0.0.0.0:11001\nsecurity:\n  mode: none\n"
    )
    assert run(["--json", "--config", str(tmp_path), "config", "check"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["ok"] is False
    assert report["problems"] == err.splitlines()
    assert "use security.mode 'curve' to reach beyond this machine" in report["problems"][0]


def test_check_missing_explicit_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config", str(tmp_path / "nope"), "config", "check"]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'nope'}: config directory does not exist\n"


def test_show_prints_effective_yaml(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"PLANTD_CLIENT_TIMEOUT": "2s"}
    assert run(["--config", str(etc), "config", "show"], environ) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# effective configuration: {etc}, with PLANTD_CLIENT_TIMEOUT\n")
    data = yaml.safe_load(out)
    assert data["logging"] == {
        "level": "debug",
        "format": "text",
        "publish": "info",
        "publish_queue": 10000,
    }
    assert data["client"]["timeout"] == 2.0
    sections = [f.name for f in dataclasses.fields(PlantdConfig) if f.name != "source_dir"]
    assert list(data) == sections  # in the schema's order
    assert sections[:7] == ["broker", "bus", "client", "worker", "logging", "paths", "state"]


no_etc_plantd = pytest.mark.skipif(
    DEFAULT_CONFIG_DIR.is_dir(), reason="this machine has /etc/plantd, which would be used"
)


@no_etc_plantd
def test_check_ok_with_built_in_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "check"]) == 0
    assert capsys.readouterr().out == "config OK: no config directory: built-in defaults\n"


@no_etc_plantd
def test_show_json_without_config_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--json", "config", "show"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["broker"]["endpoint"] == "tcp://127.0.0.1:9797"
    assert data["paths"] == {"data": "/var/lib/plantd", "run": "/run/plantd"}


def test_through_the_real_entry_point(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from plantd.cli import main

    assert main(["--config", str(etc), "config", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"config OK: {etc}: plantd.yaml")
    (etc / "plantd.yaml").write_text("logging: {level: loud}\n")
    assert main(["--config", str(etc), "config", "show"]) == 2
    assert capsys.readouterr().err == (
        f"plant: invalid configuration:\n{etc}/plantd.yaml:1: logging.level: expected one of "
        "'debug', 'info', 'warning', 'error', got 'loud'\n"
    )
