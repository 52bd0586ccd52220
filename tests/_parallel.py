"""How the suite is shared out between pytest-xdist workers (``make test`` runs ``-n auto
--dist loadgroup``; loaded with ``-p tests._parallel`` from pyproject's ``addopts``).

- The tests of one file stay on one worker: a file's tests share module-scoped fixtures and,
  in places, an outside resource (a PostgreSQL table, a topic on the machine's Mosquitto)
  that two of them must not use at once.
- The image tests (marker ``image``) are one group: they share one image build, which takes
  minutes and must not be made twice. They are put first, so that the longest group starts
  at once on one worker while the other works through the rest.

Without xdist (``-n 0``, or a plain ``pytest FILE``) the marks are inert and the order is the
usual one but for the image tests first.
"""

from __future__ import annotations

import pytest

IMAGE_GROUP = "image"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if item.get_closest_marker("image") is not None:
            item.add_marker(pytest.mark.xdist_group(IMAGE_GROUP))
        else:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    # A stable sort: the image group first, everything else in collection order (every
    # worker must see the same order).
    items.sort(key=lambda item: item.get_closest_marker("image") is None)
