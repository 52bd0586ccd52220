"""The PostgreSQL / TimescaleDB sink kind (``type: postgres``), over psycopg 3 (the
``postgres`` extra). It enters through the ``plantd.sinks`` entry point ``postgres`` like any
third party's kind; docs/sinks.md describes every key of its ``postgres:`` section."""

from __future__ import annotations

from plantd.sinks import SinkKind, Upstream, UpstreamContext
from plantd.sinks.postgres._config import PostgresConfig, PostgresSinkConfig

__all__ = ["SINK_KIND", "PostgresConfig", "PostgresSinkConfig"]


def _make_upstream(sink: PostgresSinkConfig, context: UpstreamContext) -> Upstream:
    from plantd.sinks.postgres._upstream import PostgresUpstream  # psycopg: only when it runs

    return PostgresUpstream(sink)


SINK_KIND = SinkKind(
    config_type=PostgresSinkConfig,
    make_upstream=_make_upstream,
    install_hint="pip install 'plantd[postgres]'",
)
"""The ``plantd.sinks`` entry point ``postgres``."""
