"""Calling service operations: the convention on top of the MDP clients.

``idempotent=True`` says the operation may run twice without harm (a read, or a write carrying
a request id the service deduplicates): the client then also retries when the broker lost the
worker (``broker.worker-lost``), within the same attempts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from plantd.client import AsyncClient, Client
from plantd.service._codec import Json, decode_reply, encode_call

__all__ = ["call", "call_async", "stream", "stream_async"]


async def call_async(
    client: AsyncClient,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
    idempotent: bool = False,
) -> Json:
    """The result of ``operation`` on ``service``; raises ``ServiceError`` for ``ok: false``."""
    body = await client.request(
        service,
        *encode_call(operation, params),
        timeout=timeout,
        retries=retries,
        idempotent=idempotent,
    )
    return decode_reply(body, service)


async def stream_async(
    client: AsyncClient,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
    idempotent: bool = False,
) -> AsyncIterator[Json]:
    """Each result a streaming operation sends (PARTIALs, then the FINAL)."""
    async for body in client.stream(
        service, *encode_call(operation, params), timeout=timeout, idempotent=idempotent
    ):
        yield decode_reply(body, service)


def call(
    client: Client,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
    idempotent: bool = False,
) -> Json:
    """Blocking :func:`call_async`."""
    body = client.request(
        service,
        *encode_call(operation, params),
        timeout=timeout,
        retries=retries,
        idempotent=idempotent,
    )
    return decode_reply(body, service)


def stream(
    client: Client,
    service: str,
    operation: str,
    params: dict[str, Json] | None = None,
    *,
    timeout: float | None = None,
    idempotent: bool = False,
) -> Iterator[Json]:
    for body in client.stream(
        service, *encode_call(operation, params), timeout=timeout, idempotent=idempotent
    ):
        yield decode_reply(body, service)
