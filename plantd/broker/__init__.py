"""The plantd broker process: MDP routing (sans-IO core in :mod:`plantd.mdp`) and the data bus."""

from __future__ import annotations

from plantd.broker._bus import BusProxy
from plantd.broker._server import BrokerServer

__all__ = ["BrokerServer", "BusProxy"]
