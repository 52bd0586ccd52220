"""MDP clients: :class:`AsyncClient` (asyncio, many requests in flight) and :class:`Client`."""

from __future__ import annotations

from plantd.client._async import AsyncClient
from plantd.client._core import Reply
from plantd.client._sync import Client

__all__ = ["AsyncClient", "Client", "Reply"]
