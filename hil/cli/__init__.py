"""The rig's ``plant`` commands: ``plant sim …`` (:mod:`hil.cli._sim`) and ``plant hil …``
(:mod:`hil.cli._scenario`).

They enter ``plant`` through the ``plantd.cli`` entry-point group, as the drivers' commands do,
and use only the public command kit :mod:`plantd.cli`: the core does not know the rig exists.
Importing this package is cheap; :mod:`hil.sim` and :mod:`hil.scenario` are imported only when
a command runs, so ``plant`` starts as fast with the rig installed as without it.
"""

from __future__ import annotations

__all__: list[str] = []
