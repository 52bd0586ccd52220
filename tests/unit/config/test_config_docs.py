"""docs/configuration.md stays in step with the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plantd.config import PlantdConfig, load_config, to_data

DOCS = Path(__file__).parents[3] / "docs" / "configuration.md"


def _leaves() -> list[tuple[str, str, object]]:
    data = to_data(PlantdConfig())
    assert isinstance(data, dict)
    return [(section, key, value) for section, keys in data.items() for key, value in keys.items()]


@pytest.mark.parametrize(("section", "key", "default"), _leaves())
def test_every_key_is_documented_with_its_default_and_variable(
    section: str, key: str, default: object
) -> None:
    variable = f"PLANTD_{section.upper()}_{key.upper()}"
    rows = [line for line in DOCS.read_text().splitlines() if f"| `{variable}` |" in line]
    assert len(rows) == 1, f"{variable} has no row of its own in {DOCS.name}"
    assert rows[0].startswith(f"| `{key}` |")
    assert f"| `{default}`" in rows[0], f"{section}.{key}: default {default!r} not in {rows[0]}"


def test_the_complete_example_is_valid(tmp_path: Path) -> None:
    text = DOCS.read_text()
    match = re.search(r"### A complete example\n\n```yaml\n(.*?)```", text, re.DOTALL)
    assert match is not None
    (tmp_path / "plantd.yaml").write_text(match[1])
    assert load_config(tmp_path) == PlantdConfig(source_dir=tmp_path)
