"""``python -m plantd.cli``: the same as the ``plant`` command."""

from __future__ import annotations

import sys

from plantd.cli import main

sys.exit(main())
