"""How the suite is shared out between pytest-xdist workers (``make test`` runs two per core,
``--dist loadgroup``; loaded with ``-p tests._parallel`` from pyproject's ``addopts``).

- The tests of one file stay on one worker: a file's tests share module-scoped fixtures and,
  in places, an outside resource (a PostgreSQL table, a topic on the machine's Mosquitto)
  that two of them must not use at once.
- The image tests (``tests/image/``) are one group: they share one image build, which takes
  minutes and must not be made twice. They are put first, so that the longest group starts
  at once on one worker while the others work through the rest.

The groups are made by a scheduler of our own rather than by ``xdist_group`` marks: xdist
appends a mark's group to the test's node id, which pytest 9.2 no longer lets it do (the id
is kept elsewhere), so every test became a group of its own and both workers built an image.

Without xdist (``-n 0``, or a plain ``pytest FILE``) only the order changes: the image tests
first.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

IMAGE_DIR = "tests/image/"


def work_group(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or the image tests all together."""
    path = nodeid.split("::", 1)[0]
    return IMAGE_DIR if path.startswith(IMAGE_DIR) else path


class FileGroupScheduling(LoadScopeScheduling):
    """Load balancing by whole groups (:func:`work_group`), in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return work_group(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> FileGroupScheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    return FileGroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort: the image tests first, everything else in collection order (every
    # worker must see the same order).
    items.sort(key=lambda item: not item.nodeid.startswith(IMAGE_DIR))
