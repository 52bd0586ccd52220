"""Hardware-in-the-loop: simulated devices that plantd can be run against.

The simulators are for people as much as for tests: a HIL rig, a demo on a laptop, or a quick
look at what a driver does when a device misbehaves. Each protocol has its own subpackage
(:mod:`hil.modbus`), with a device model, servers on real sockets or pseudo-terminals, and
fault injection.

On top of them: :mod:`hil.sim` (simulator files: devices, a plant model that moves their
values, faults at run time; ``plant sim``), :mod:`hil.scenario` (scripted runs against the real
stack with expectations, JUnit XML and traces; ``plant hil run``) and :mod:`hil.pytest_plugin`
(fixtures). The two commands live in :mod:`hil.cli` and enter ``plant`` through the
``plantd.cli`` entry-point group: plantd itself never imports this package. ``docs/hil.md`` is
the user's guide; ``hil/plants/`` and ``hil/scenarios/`` hold the shipped pump station and its
scenarios.
"""

from __future__ import annotations

__all__: list[str] = []
