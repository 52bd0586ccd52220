"""``plant state scopes|create-scope|delete-scope|get|set|delete|list|snapshot|watch|health``.

Each subcommand calls the ``org.plantd.State`` operation of the same name (``scopes`` is
``list-scopes``); ``watch`` follows the change stream with a :class:`~plantd.state.Replica`, so
it prints every change exactly once, in order, resyncing from a snapshot after a gap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from plantd.cli._call_cmd import add_client_options
from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit
from plantd.errors import ServiceError, UsageError

__all__ = ["register"]

if TYPE_CHECKING:  # the state package is imported when a command runs, not for --help
    from plantd.config import PlantdConfig
    from plantd.state import StateClient


def register(sub: Any) -> None:
    state = sub.add_parser(
        "state", parents=[OUTPUT_OPTIONS], help="read, write and watch the state service"
    )
    what = state.add_subparsers(dest="state_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, run: Callable[[argparse.Namespace], int]) -> Any:
        parser = what.add_parser(name, parents=[OUTPUT_OPTIONS], help=help_text)
        add_client_options(parser)
        parser.set_defaults(run=run)
        return parser

    command("scopes", "list the scopes with their key counts and revisions", _scopes)
    for name, help_text in (
        ("create-scope", "create a scope (nothing changes if it exists)"),
        ("delete-scope", "delete a scope and every key in it"),
    ):
        parser = command(name, help_text, _scope_change)
        parser.add_argument("scope")
    get = command("get", "print a key's value", _get)
    get.add_argument("scope")
    get.add_argument("key")
    put = command("set", "set a key to a JSON value", _set)
    put.add_argument("scope")
    put.add_argument("key")
    put.add_argument("value", help="a JSON value: 12.5, true, '\"text\"', '{\"a\": 1}'")
    put.add_argument("--string", action="store_true", help="take VALUE as text, not JSON")
    put.add_argument("--if-revision", type=int, metavar="N", help="compare-and-set (0: create)")
    delete = command("delete", "delete a key", _delete)
    delete.add_argument("scope")
    delete.add_argument("key")
    delete.add_argument("--if-revision", type=int, metavar="N", help="only at this revision")
    listing = command("list", "list a scope's keys (every page)", _list)
    listing.add_argument("scope")
    listing.add_argument("--prefix", default="", help="only keys that start with PREFIX")
    listing.add_argument("--values", action="store_true", help="show values too")
    listing.add_argument("--limit", type=int, metavar="N", help="at most N keys")
    snapshot = command("snapshot", "print a consistent copy of a scope or of everything", _snap)
    snapshot.add_argument("scope", nargs="?")
    watch = command("watch", "print every change as it is committed (Ctrl-C stops)", _watch)
    watch.add_argument("scope", nargs="?", help="only this scope (default: every scope)")
    watch.add_argument("--count", type=int, metavar="N", help="exit after N changes")
    command("health", "whether the store takes writes, and its figures", _health)


def _run(
    args: argparse.Namespace,
    body: Callable[[StateClient], Awaitable[int]],
    config: PlantdConfig | None = None,
) -> int:
    """Run ``body`` with a StateClient; a service error is printed (or emitted) and exits 1."""
    from plantd.client import AsyncClient
    from plantd.state import StateClient

    config = config or cli_config(args)
    overrides: dict[str, object] = {"check_presence": True}  # "nobody there" at once
    if args.timeout is not None:
        overrides["timeout"] = args.timeout
    if args.retries is not None:
        overrides["retries"] = args.retries

    async def main() -> int:
        async with AsyncClient.from_config(
            config.broker.endpoint, config.client, **overrides
        ) as client:
            return await body(StateClient(client))

    try:
        return asyncio.run(main())
    except ServiceError as exc:
        if args.json:
            emit(args, {"ok": False, "error": {"code": exc.code, "message": exc.message}}, "")
        else:
            print(f"plant: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


def _json_text(value: Any) -> str:
    if isinstance(value, dict | list) and value:
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def _scopes(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        result = await state.list_scopes()
        rows = [f"{'SCOPE':48} {'KEYS':>6} {'REVISION':>9}"]
        rows += [f"{s['scope']:48} {s['keys']:>6} {s['revision']:>9}" for s in result["scopes"]]
        emit(args, result, "\n".join(rows) if result["scopes"] else "(no scopes)")
        return 0

    return _run(args, body)


def _scope_change(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        if args.state_command == "create-scope":
            result = await state.create_scope(args.scope)
            done = "created" if result["created"] else "already exists"
            emit(args, result, f"{args.scope}: {done} (revision {result['revision']})")
        else:
            result = await state.delete_scope(args.scope)
            emit(
                args,
                result,
                f"{args.scope}: deleted with {result['keys']} key(s) "
                f"(revision {result['revision']})",
            )
        return 0

    return _run(args, body)


def _get(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        result = await state.get(args.scope, args.key)
        emit(args, result, _json_text(result["value"]))
        return 0

    return _run(args, body)


def _set(args: argparse.Namespace) -> int:
    value: Any = args.value
    if not args.string:
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"VALUE is not JSON ({exc}); quote text as '\"{args.value}\"' or use --string"
            ) from None

    async def body(state: StateClient) -> int:
        result = await state.set(args.scope, args.key, value, if_revision=args.if_revision)
        emit(
            args,
            result,
            f"{args.scope} {args.key}: set (revision {result['revision']}, "
            f"version {result['version']})",
        )
        return 0

    return _run(args, body)


def _delete(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        result = await state.delete(args.scope, args.key, if_revision=args.if_revision)
        emit(args, result, f"{args.scope} {args.key}: deleted (revision {result['revision']})")
        return 0

    return _run(args, body)


def _list(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        keys: list[dict[str, Any]] = []
        after: str | None = None
        wanted = args.limit if args.limit is not None else sys.maxsize
        revision = 0
        while len(keys) < wanted:
            page = await state.list(
                args.scope,
                prefix=args.prefix,
                after=after,
                limit=min(1000, wanted - len(keys)),
                values=args.values,
            )
            revision = max(revision, page["revision"])
            keys.extend(page["keys"])
            after = page["next"]
            if after is None:
                break
        rows = [f"{'KEY':40} {'REVISION':>9}" + ("  VALUE" if args.values else "")]
        for item in keys:
            row = f"{item['key']:40} {item['revision']:>9}"
            if args.values:
                row += "  " + json.dumps(item["value"], ensure_ascii=False)
            rows.append(row)
        result = {"scope": args.scope, "revision": revision, "keys": keys}
        emit(args, result, "\n".join(rows) if keys else "(no keys)")
        return 0

    return _run(args, body)


def _snap(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        snapshot = await state.snapshot(args.scope)
        data = {
            "revision": snapshot.revision,
            "scopes": {name: scope.as_json() for name, scope in snapshot.scopes.items()},
        }
        emit(args, data, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return 0

    return _run(args, body)


def _health(args: argparse.Namespace) -> int:
    async def body(state: StateClient) -> int:
        result = await state.health()
        lines = [f"{name:15} {result[name]}" for name in sorted(result)]
        emit(args, result, "\n".join(lines))
        return 0 if result["status"] == "ok" else 1

    return _run(args, body)


def _watch(args: argparse.Namespace) -> int:
    from plantd.state import Changed, Replica

    config = cli_config(args)

    async def body(state: StateClient) -> int:
        replica = Replica(state, config.bus.backend, args.scope)
        seen = 0
        try:
            async for update in replica.updates():
                if isinstance(update, Changed):
                    seen += 1
                    record = update.event.to_record()
                    line = (
                        json.dumps({"type": "change", **record}, ensure_ascii=False)
                        if args.json
                        else _change_line(record)
                    )
                elif args.json:
                    line = json.dumps(
                        {"type": "resync", "revision": update.revision, "reason": update.reason}
                    )
                else:
                    line = (
                        f"# in step with the store at revision {update.revision} ({update.reason})"
                    )
                print(line, flush=True)
                if args.count is not None and seen >= args.count:
                    break
        finally:
            replica.close()
        return 0

    return _run(args, body, config)


def _change_line(record: dict[str, Any]) -> str:
    head = f"r{record['revision']} {record['op']} {record['scope']}"
    if record["op"] == "set":
        value = json.dumps(record["value"], ensure_ascii=False)
        return f"{head} {record['key']} = {value} (v{record['version']})"
    if record["op"] == "delete":
        return f"{head} {record['key']}"
    if record["op"] == "delete-scope":
        return f"{head} ({record['keys']} keys)"
    return head
