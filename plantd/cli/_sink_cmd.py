"""``plant sink run|status|list``: run an upstream sink, or ask a running one for its status."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from plantd.cli._call_cmd import add_client_options, client_for
from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit, serve_as, setup_logging
from plantd.service import call

__all__ = ["register"]


def register(sub: Any) -> None:
    sink = sub.add_parser("sink", help="run an upstream sink (sinks.d/NAME.yaml), or query one")
    actions = sink.add_subparsers(dest="sink_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[OUTPUT_OPTIONS], help="run a sink in the foreground")
    run.add_argument("name")
    run.set_defaults(run=_run)
    status = actions.add_parser("status", parents=[OUTPUT_OPTIONS], help="a sink's status")
    status.add_argument("name")
    add_client_options(status)
    status.set_defaults(run=_status)
    listed = actions.add_parser("list", parents=[OUTPUT_OPTIONS], help="the configured sinks")
    listed.set_defaults(run=_list)


def _run(args: argparse.Namespace) -> int:
    from plantd.sinks import SinkAlreadyRunning, load_sink, run_sink

    config = cli_config(args)
    load_sink(config, args.name)  # a bad file is reported before anything starts
    setup_logging(args, config)
    serve_as(config, f"sink.{args.name}")
    try:
        asyncio.run(run_sink(config, args.name))
    except SinkAlreadyRunning as exc:  # its own exit status (docs/sinks.md, "Errors")
        print(f"plant: sink {args.name}: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


def _status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        status = call(client, f"org.plantd.sink.{args.name}", "status")
    queue, counters = status["queue"], status["counters"]
    lines = [
        f"sink        {status['sink']} ({status['type']}), "
        + ("connected" if status["connected"] else "NOT connected")
        + (f", last error: {status['last_error']}" if status["last_error"] else ""),
        f"queue       {queue['entries']:,} entries, {queue['bytes']:,} of "
        f"{queue['max_bytes']:,} bytes ({queue['path']})",
        f"counters    taken {counters['taken']:,}, delivered {counters['delivered']:,}, "
        f"dropped {counters['dropped']:,}, lost {counters['lost']:,}, "
        f"repaired {counters['repaired']:,}, duplicates {counters['duplicates']:,}",
        f"gaps        {status['open_gaps']} open",
    ]
    if status.get("events", {}).get("prefixes"):
        lines += [
            f"events      {', '.join(status['events']['prefixes'])}: "
            f"{queue.get('events', 0):,} queued, taken {counters.get('events_taken', 0):,}, "
            f"delivered {counters.get('events_delivered', 0):,}, "
            f"dropped {counters.get('events_dropped', 0):,}, "
            f"missed {counters.get('events_missed', 0):,}, "
            f"{status.get('open_event_gaps', 0)} gaps open",
        ]
    emit(args, status, "\n".join(lines))
    return 0


def _list(args: argparse.Namespace) -> int:
    from plantd.sinks import list_sinks, load_sink

    config = cli_config(args)
    names = list_sinks(config)
    listed = {name: load_sink(config, name).type for name in names}
    human = "\n".join(f"{name:24} {kind}" for name, kind in listed.items()) or "no sinks"
    emit(args, listed, human)
    return 0
