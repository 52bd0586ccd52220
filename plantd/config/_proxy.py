"""``proxy:``, the HTTP gateway and web app (``plantd-proxy``, see ``docs/app.md``).

In the config package for the same reason as ``historian:``: :class:`PlantdConfig` embeds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from plantd.config._location import KeyPath
from plantd.config._markers import Duration, Ge, Gt, Le
from plantd.config._network import is_loopback_host, parse_listen

if TYPE_CHECKING:
    from plantd.config._model import PathsConfig

__all__ = ["ProxyConfig"]

_HOUR = 3_600.0


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """``proxy:``.

    ``listen`` is the ``HOST:PORT`` of the HTTP(S) endpoint (port ``0``: any free port, written
    to ``proxy-endpoints.json`` in ``paths.run``). Off loopback it needs ``tls_certificate``
    and ``tls_key`` (the device certificate ``plant keys init`` makes, or your own): passwords
    and session cookies never cross a network in the clear. ``database`` (None:
    ``<paths.data>/proxy.db``) keeps web passwords, API tokens and sessions (hashes only).
    A browser session ends after ``session_idle`` without a request, and after
    ``session_max`` in any case. After ``login_attempts`` failed logins for one user or from
    one address within ``login_window``, further attempts are refused for the rest of the
    window (HTTP 429). Each stream client may fall ``stream_queue`` events behind before the
    oldest are dropped (and a gap is reported to it). ``hil_results`` is where the app looks
    for HIL results, JUnit XML files (``plant hil run --junit DIR/NAME.xml``; None:
    ``<paths.data>/hil``).
    """

    listen: str = "127.0.0.1:8080"
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    database: Path | None = None
    session_idle: Annotated[float, Duration, Gt(0)] = 8 * _HOUR
    session_max: Annotated[float, Duration, Gt(0)] = 7 * 24 * _HOUR
    login_attempts: Annotated[int, Ge(1), Le(1000)] = 5
    login_window: Annotated[float, Duration, Gt(0)] = 300.0
    stream_queue: Annotated[int, Ge(10), Le(1_000_000)] = 1000
    request_timeout: Annotated[float, Duration, Gt(0), Le(300)] = 10.0
    hil_results: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None and self.tls_key is not None

    def database_path(self, paths: PathsConfig) -> Path:
        """``database``, or ``proxy.db`` in ``paths.data`` when it is not set."""
        return self.database if self.database is not None else paths.data / "proxy.db"

    def hil_results_path(self, paths: PathsConfig) -> Path:
        """``hil_results``, or ``hil`` in ``paths.data`` when it is not set."""
        return self.hil_results if self.hil_results is not None else paths.data / "hil"

    def listen_address(self) -> tuple[str, int]:
        """``listen`` as (host, port) (call after :meth:`cross_check`)."""
        address = parse_listen(self.listen)
        if address is None:
            raise ValueError(f"proxy.listen is not HOST:PORT: {self.listen!r}")
        return address

    def cross_check(self) -> Iterator[tuple[KeyPath, str]]:
        """``listen`` is ``HOST:PORT``; off loopback only with TLS; certificate and key go
        together."""
        address = parse_listen(self.listen)
        if address is None:
            yield (
                ("listen",),
                f"expected HOST:PORT (port 0 to 65535, 0 for any free port), got {self.listen!r}",
            )
        elif not self.tls and not is_loopback_host(address[0]):
            yield (
                ("listen",),
                f"{self.listen!r} is not on loopback: set tls_certificate and tls_key first "
                "(passwords and session cookies must not cross a network in the clear)",
            )
        if (self.tls_certificate is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_certificate"
            yield ((missing,), "tls_certificate and tls_key go together: set both or neither")
