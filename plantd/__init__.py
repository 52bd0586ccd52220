"""plantd: a distributed control system for the edge.

The public surface is organised by concept; import from the subpackages:

- :mod:`plantd.mdp`      sans-IO Majordomo (MDP/0.2 and 0.1) codec and state machines
- :mod:`plantd.client`   MDP clients (sync and asyncio)
- :mod:`plantd.worker`   MDP workers (sync and asyncio)
- :mod:`plantd.service`  the service-call convention (operation + JSON) over client and worker
- :mod:`plantd.config`   configuration loading and validation
- :mod:`plantd.errors`   the exception tree
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
