"""``plant opcua browse``: the command that helps write a module file."""

from __future__ import annotations

import asyncio
import json

import pytest

from hil.opcua import OpcuaSimulator
from plantd.cli import main


async def test_browse_lists_paths_nodes_types_and_values(
    sim: OpcuaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["opcua", "browse", sim.endpoint, "2:Line1"]) == 0
    out = capsys.readouterr().out
    assert "namespace 2: urn:plantd:sim" in out
    assert "2:Line1/2:Recipe  [Variable]  ns=2;s=Line1.Recipe  String = 'standard'" in out
    assert "2:Line1/2:Add  [Method]  ns=2;s=Line1.Add" in out
    assert sim.session_count() == 0


async def test_browse_json_and_depth(
    sim: OpcuaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await asyncio.to_thread(main, ["opcua", "browse", sim.endpoint, "--depth", "2", "--json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    by_path = {row["path"]: row for row in data["nodes"]}
    assert by_path["2:Line1"]["class"] == "Object"
    assert by_path["2:Line1/2:Speed"] == {
        "depth": 2, "path": "2:Line1/2:Speed", "class": "Variable", "node": "ns=2;s=Line1.Speed",
        "type": "Double", "value": 0.0,
    }  # fmt: skip


async def test_browse_explains_failures(
    sim: OpcuaSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["opcua", "browse", sim.endpoint, "2:Nope"]) == 1
    assert "path 2:Nope not found on the server (BadNoMatch)" in capsys.readouterr().err
    await sim.stop()
    assert await asyncio.to_thread(main, ["opcua", "browse", sim.endpoint]) == 1
    assert f"browsing {sim.endpoint}: connecting to {sim.endpoint}" in capsys.readouterr().err
