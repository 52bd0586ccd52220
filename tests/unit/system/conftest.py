from __future__ import annotations

from pathlib import Path

import pytest

from plantd.system import BootEntries
from tests.unit.system._bootloader_model import make_esp


@pytest.fixture
def esp(tmp_path: Path) -> BootEntries:
    return make_esp(tmp_path)
