"""The one rule of hot-plug (plantd.reconfigure): what is on disk, what changed since it was
applied, and which of the changed files ``plant config check`` refuses."""

from __future__ import annotations

from pathlib import Path

from plantd.reconfigure import Entry, Snapshot, plan, refusals, snapshot

PUMP = "driver: fake\ngroups: []\n"


def write(config_dir: Path, relative: str, text: str = PUMP) -> Path:
    path = config_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_snapshot_holds_modules_and_sinks_by_who_runs_them(tmp_path: Path) -> None:
    write(tmp_path, "modules.d/pump.yaml")
    write(tmp_path, "modules.d/alone.yaml", PUMP + "isolated: true\n")
    write(tmp_path, "sinks.d/cloud.yaml", "kind: mqtt\n")
    write(tmp_path, "sim.d/plant.yaml", "not: watched\n")
    files = snapshot(tmp_path)
    assert sorted(files.of("host")) == ["pump"]
    assert sorted(files.of("module")) == ["alone"]
    assert sorted(files.of("sink")) == ["cloud"]
    assert files.entries[("module", "pump")].path == tmp_path / "modules.d/pump.yaml"


def test_hidden_files_and_invalid_names_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, "modules.d/.pump.yaml.swp.yaml")  # an editor's
    write(tmp_path, "modules.d/.hidden.yaml")
    write(tmp_path, "modules.d/with space.yaml")
    write(tmp_path, "modules.d/-dash.yaml")
    write(tmp_path, "modules.d/pump.yaml.bak")  # not *.yaml
    write(tmp_path, "sinks.d/ok_sink-1.yaml", "kind: mqtt\n")
    files = snapshot(tmp_path)
    assert [key for key in files.entries] == [("sink", "ok_sink-1")]


def test_a_missing_directory_is_an_empty_one(tmp_path: Path) -> None:
    assert snapshot(tmp_path).entries == {}
    assert not plan(Snapshot(), snapshot(tmp_path))


def test_added_changed_removed_by_who_runs_them(tmp_path: Path) -> None:
    write(tmp_path, "modules.d/a.yaml")
    write(tmp_path, "modules.d/b.yaml")
    write(tmp_path, "sinks.d/s.yaml", "kind: mqtt\n")
    before = snapshot(tmp_path)
    write(tmp_path, "modules.d/a.yaml", PUMP + "# changed\n")
    (tmp_path / "modules.d/b.yaml").unlink()
    write(tmp_path, "modules.d/c.yaml", PUMP + "isolated: true\n")
    write(tmp_path, "sinks.d/t.yaml", "kind: postgres\n")
    changes = plan(before, snapshot(tmp_path))
    assert changes.changed == {"host": ["a"], "module": [], "sink": []}
    assert changes.removed == {"host": ["b"], "module": [], "sink": []}
    assert changes.added == {"host": [], "module": ["c"], "sink": ["t"]}
    assert all(changes.touches(where) for where in ("host", "module", "sink"))
    assert changes.describe() == [
        "module c: added (own process)",
        "sink t: added (sink)",
        "module a: changed (module host)",
        "module b: removed (module host)",
    ]


def test_a_touch_that_changes_nothing_is_no_change(tmp_path: Path) -> None:
    path = write(tmp_path, "modules.d/a.yaml")
    before = snapshot(tmp_path)
    path.write_text(PUMP)  # same bytes, new mtime
    changes = plan(before, snapshot(tmp_path))
    assert not changes
    assert changes.describe() == []
    assert not changes.touches("host")


def test_a_module_that_goes_isolated_leaves_the_host_for_a_process_of_its_own(
    tmp_path: Path,
) -> None:
    write(tmp_path, "modules.d/a.yaml")
    before = snapshot(tmp_path)
    write(tmp_path, "modules.d/a.yaml", PUMP + "isolated: true\n")
    changes = plan(before, snapshot(tmp_path))
    assert changes.removed["host"] == ["a"]
    assert changes.added["module"] == ["a"]
    assert changes.changed == {"host": [], "module": [], "sink": []}
    back = plan(snapshot(tmp_path), before)
    assert (back.removed["module"], back.added["host"]) == (["a"], ["a"])


def test_a_file_that_cannot_be_parsed_is_the_hosts(tmp_path: Path) -> None:
    write(tmp_path, "modules.d/bad.yaml", "isolated: true\n  : [\n")
    assert sorted(snapshot(tmp_path).of("host")) == ["bad"]  # where broken files are reported


def test_the_applied_snapshot_survives_a_save_and_load(tmp_path: Path) -> None:
    write(tmp_path, "modules.d/a.yaml", PUMP + "isolated: true\n")
    write(tmp_path, "sinks.d/s.yaml", "kind: mqtt\n")
    files = snapshot(tmp_path)
    saved = tmp_path / "run" / "applied-config.json"
    files.save(saved)
    assert Snapshot.load(saved) == files
    assert [p.name for p in saved.parent.iterdir()] == ["applied-config.json"]  # no scratch


def test_no_or_an_unreadable_applied_snapshot_loads_as_none(tmp_path: Path) -> None:
    assert Snapshot.load(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert Snapshot.load(tmp_path / "bad.json") is None
    (tmp_path / "wrong.json").write_text('{"files": [{"kind": "module"}]}')
    assert Snapshot.load(tmp_path / "wrong.json") is None


def entry(config_dir: Path, relative: str) -> Entry:
    path = config_dir / relative
    kind = "sink" if relative.startswith("sinks.d") else "module"
    return Entry(kind, path.stem, path, "digest")


def test_refusals_take_absolute_and_relative_problem_paths(tmp_path: Path) -> None:
    bad, worse, good = (
        entry(tmp_path, "modules.d/bad.yaml"),
        entry(tmp_path, "sinks.d/worse.yaml"),
        entry(tmp_path, "modules.d/good.yaml"),
    )
    problems = [
        f"{tmp_path}/modules.d/bad.yaml:3: groups: expected a list",
        "sinks.d/worse.yaml:1: kind: unknown sink kind 'nope'",
        "sinks.d/worse.yaml no such file",
        "plantd.yaml:2: broker: unknown key",  # names no module or sink file: refuses none
        f"{tmp_path}/modules.d/other.yaml:1: not about to be applied",
    ]
    found = refusals(problems, [bad, worse, good])
    assert found == {
        str(bad.path): [problems[0]],
        str(worse.path): [problems[1], problems[2]],
    }


def test_a_relative_path_names_only_its_own_file(tmp_path: Path) -> None:
    a = entry(tmp_path, "modules.d/a.yaml")
    # "modules.d/ab.yaml" starts with "modules.d/a" but is another file.
    assert refusals(["modules.d/ab.yaml:1: wrong"], [a]) == {}
    assert refusals(["modules.d/a.yaml:1: wrong"], [a]) == {
        str(a.path): ["modules.d/a.yaml:1: wrong"]
    }
