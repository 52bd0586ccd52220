"""Hardware-in-the-loop: simulated devices that plantd can be run against.

The simulators are for people as much as for tests: a HIL rig, a demo on a laptop, or a quick
look at what a driver does when a device misbehaves. Each protocol has its own subpackage
(:mod:`hil.modbus`), with a device model, servers on real sockets or pseudo-terminals, and
fault injection.
"""

from __future__ import annotations

__all__: list[str] = []
