"""Addresses in the configuration: ``HOST:PORT`` listen addresses and loopback hosts."""

from __future__ import annotations

import ipaddress
import re

__all__ = ["is_loopback_host", "parse_listen"]

_LISTEN = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]+):(?P<port>\d{1,5})", re.ASCII)


def parse_listen(listen: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port); None if it is not one."""
    match = _LISTEN.fullmatch(listen)
    if match is None or int(match["port"]) > 65_535:
        return None
    return match["host"].strip("[]"), int(match["port"])


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address; a host name or an interface name may not be."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
