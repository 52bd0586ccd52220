"""``plant proxy``: the web proxy's own credentials, web passwords and API tokens (docs/app.md).

These commands work on the proxy's database (``proxy.database``, ``<paths.data>/proxy.db``)
directly, like ``plant keys`` works on the key files: no running proxy is needed, and a change
applies to a running one at its next request. Only admitted people (``user.*`` principals in
the key ring) get a password or a token; who they are and what they may do stays in the key
ring (``plant keys add user.alice … --role operator``).

``passwd`` asks the password twice on a terminal, or reads one line with ``--password-stdin``
(scripts, provisioning); setting it ends the person's web sessions. ``token create`` prints
the token once: only its hash is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit
from plantd.clock import SYSTEM_CLOCK
from plantd.config import PlantdConfig
from plantd.config._units import parse_duration
from plantd.errors import UsageError
from plantd.proxy._accounts import Accounts, TokenInfo
from plantd.security import check_principal, load_keyring

__all__ = ["register"]

DEFAULT_EXPIRY = "90d"


def register(sub: Any) -> None:
    proxy = sub.add_parser("proxy", help="the web proxy's passwords and API tokens")
    actions = proxy.add_subparsers(dest="action", metavar="ACTION", required=True)

    passwd = actions.add_parser(
        "passwd", parents=[OUTPUT_OPTIONS], help="set a person's web password"
    )
    passwd.add_argument("user", metavar="USER", help="alice or user.alice (an admitted person)")
    passwd.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    passwd.add_argument(
        "--remove", action="store_true", help="remove the password (no more web logins)"
    )
    passwd.set_defaults(run=_passwd)

    token = actions.add_parser("token", help="API tokens (Authorization: Bearer …)")
    token_actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)

    create = token_actions.add_parser(
        "create", parents=[OUTPUT_OPTIONS], help="make a token for a person (shown once)"
    )
    create.add_argument("user", metavar="USER", help="alice or user.alice (an admitted person)")
    create.add_argument("--name", required=True, help="what it is for (grafana, scada, …)")
    create.add_argument(
        "--expires",
        default=DEFAULT_EXPIRY,
        metavar="DURATION",
        help=f"lifetime: 30d, 12h, … or 'never' (default: {DEFAULT_EXPIRY})",
    )
    create.set_defaults(run=_token_create)

    listing = token_actions.add_parser("list", parents=[OUTPUT_OPTIONS], help="the tokens")
    listing.add_argument("user", metavar="USER", nargs="?", help="only this person's")
    listing.set_defaults(run=_token_list)

    revoke = token_actions.add_parser(
        "revoke", parents=[OUTPUT_OPTIONS], help="revoke a token by its id"
    )
    revoke.add_argument("id", metavar="ID", help="the token's id (plant proxy token list)")
    revoke.set_defaults(run=_token_revoke)


def _accounts(config: PlantdConfig) -> Accounts:
    return Accounts.from_config(config, SYSTEM_CLOCK)


def _principal(name: str) -> str:
    name = name.strip()
    return name if name.startswith("user.") else f"user.{name}"


def _person(config: PlantdConfig, name: str) -> str:
    """The principal ``name`` means, which must be an admitted person (UsageError if not)."""
    if "." in name and not name.strip().startswith("user."):
        raise UsageError(
            f"{name.strip()} is not a person: web passwords and API tokens are for user.NAME "
            "principals (services prove themselves with their CURVE keys)"
        )
    principal = _principal(name)
    if (problem := check_principal(principal)) is not None:
        raise UsageError(problem)
    keys_dir = config.security.keys_dir(config.source_dir)
    ring = load_keyring(keys_dir)
    if ring.grants(principal) is None:
        revoked = principal in ring.revoked.values()
        why = "was revoked" if revoked else f"is not admitted (no key in {keys_dir})"
        raise UsageError(
            f"{principal} {why}; only admitted people log in to the proxy: "
            f"plant keys add {principal} --generate {principal.removeprefix('user.')}"
            ".key_secret --role operator"
        )
    return principal


# -- passwd -------------------------------------------------------------------------------------


def _passwd(args: argparse.Namespace) -> int:
    config = cli_config(args)
    principal = _person(config, args.user)
    accounts = _accounts(config)
    try:
        if args.remove:
            removed = accounts.remove_password(principal)
            human = (
                f"{principal}: web password removed (and their sessions ended)"
                if removed
                else f"{principal} had no web password"
            )
            emit(args, {"principal": principal, "removed": removed}, human)
            return 0
        password = _read_password(args, principal)
        try:
            accounts.set_password(principal, password)
        except ValueError as exc:
            raise UsageError(f"password refused: {exc}") from None
    finally:
        accounts.close()
    emit(
        args,
        {"principal": principal, "password": "set", "database": str(accounts.path)},
        f"{principal}: web password set (their other web sessions are ended)",
    )
    return 0


def _read_password(args: argparse.Namespace, principal: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: nothing on standard input")
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise UsageError(
            "no terminal to ask the password on: give it on standard input with --password-stdin"
        )
    first = getpass.getpass(f"new web password for {principal}: ")
    again = getpass.getpass("again: ")
    if first != again:
        raise UsageError("the two passwords differ; nothing changed")
    return first


# -- tokens -------------------------------------------------------------------------------------


def _token_create(args: argparse.Namespace) -> int:
    config = cli_config(args)
    principal = _person(config, args.user)
    expires_in = _lifetime(args.expires)
    accounts = _accounts(config)
    try:
        secret, info = accounts.create_token(principal, args.name, expires_in)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    finally:
        accounts.close()
    until = "never expires" if info.expires is None else f"expires {_when(info.expires)}"
    if args.json:
        emit(args, {**_token_fields(info), "token": secret}, "")
        return 0
    # The secret alone on stdout, so that TOKEN=$(plant proxy token create …) works; what it
    # is and how to keep it on stderr, where a person still reads it.
    print(secret)
    print(
        f"token {info.id} for {principal} ({info.name}), {until}. Keep it now: it is not "
        "shown again. Send it as: Authorization: Bearer <token>",
        file=sys.stderr,
    )
    return 0


def _lifetime(text: str) -> float | None:
    if text.strip().lower() == "never":
        return None
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise UsageError(f"--expires: expected a duration (90d, 12h, 30m) or 'never', got {text!r}")
    return seconds


def _token_list(args: argparse.Namespace) -> int:
    config = cli_config(args)
    principal = _principal(args.user) if args.user else None
    accounts = _accounts(config)
    try:
        tokens = accounts.tokens(principal)
    finally:
        accounts.close()
    now = SYSTEM_CLOCK.now()
    rows = [f"{'ID':16} {'PRINCIPAL':20} {'NAME':16} {'CREATED':19} {'EXPIRES':19} LAST USED"]
    for info in tokens:
        expires = "never" if info.expires is None else _when(info.expires)
        if info.expired(now):
            expires = f"expired {expires}"
        last = "never" if info.last_used is None else _when(info.last_used)
        rows.append(
            f"{info.id:16} {info.principal:20} {info.name:16} {_when(info.created):19} "
            f"{expires:19} {last}"
        )
    human = "\n".join(rows) if tokens else "no tokens"
    data = [{**_token_fields(info), "expired": info.expired(now)} for info in tokens]
    emit(args, data, human)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    config = cli_config(args)
    accounts = _accounts(config)
    try:
        revoked = accounts.revoke_token(args.id)
    finally:
        accounts.close()
    if not revoked:
        raise UsageError(f"no token {args.id!r} (plant proxy token list shows them)")
    emit(args, {"id": args.id, "revoked": True}, f"token {args.id} revoked")
    return 0


def _token_fields(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "principal": info.principal,
        "name": info.name,
        "created": info.created,
        "expires": info.expires,
        "last_used": info.last_used,
    }


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="minutes")
