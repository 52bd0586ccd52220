"""``plant keys``: the CURVE keys of this installation (docs/security.md).

``init`` makes every key this machine needs (the broker's, each service's, each module's and
sink's in the configuration, and optionally local administrators'); ``list`` shows who is
admitted; ``add``, ``revoke`` and ``rotate`` change the allow-list, which the running broker
picks up within a second; ``new`` makes a key pair for yourself, on your own computer, whose
public half an administrator then adds.
"""

from __future__ import annotations

import argparse
import os
import pwd
from pathlib import Path
from typing import Any

from plantd.cli._common import OUTPUT_OPTIONS, cli_config, emit
from plantd.errors import SecurityError, UsageError
from plantd.security import (
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    KeySet,
    check_principal,
    generate,
    local_principals,
    write_key_file,
)

__all__ = ["local_principals", "register"]


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="CURVE keys: who may connect, with which roles")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init", parents=[OUTPUT_OPTIONS], help="make every key this machine needs (idempotent)"
    )
    init.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="LOGIN",
        help="also make user.LOGIN an admin with its secret key here (repeatable)",
    )
    init.add_argument(
        "--owner",
        metavar="USER",
        help="give the services' secret keys to this system user (the appliance: plantd)",
    )
    init.set_defaults(run=_init)

    listing = actions.add_parser("list", parents=[OUTPUT_OPTIONS], help="who is admitted")
    listing.set_defaults(run=_list)

    add = actions.add_parser(
        "add", parents=[OUTPUT_OPTIONS], help="admit a principal (a person, a service)"
    )
    add.add_argument("principal", help="KIND.NAME: user.alice, service.myapp, …")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--key", type=Path, metavar="FILE", help="its public key file")
    source.add_argument(
        "--generate",
        type=Path,
        metavar="FILE",
        help="make a new key pair; write the SECRET half to FILE (hand it over securely)",
    )
    add.add_argument(
        "--role", action="append", default=[], help="a role: viewer, operator, engineer, admin"
    )
    add.add_argument(
        "--serve",
        action="append",
        default=[],
        metavar="SERVICE",
        help="a service it may serve (third-party services; * matches anything)",
    )
    add.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="PREFIX",
        help="a bus topic prefix it may publish",
    )
    add.add_argument("--replace", action="store_true", help="replace its key or roles")
    add.set_defaults(run=_add)

    revoke = actions.add_parser(
        "revoke", parents=[OUTPUT_OPTIONS], help="take a principal off the allow-list"
    )
    revoke.add_argument("principal")
    revoke.set_defaults(run=_revoke)

    rotate = actions.add_parser(
        "rotate",
        parents=[OUTPUT_OPTIONS],
        help="a new key pair for a principal whose secret is on this machine",
    )
    rotate.add_argument("principal")
    rotate.set_defaults(run=_rotate)

    new = actions.add_parser(
        "new", parents=[OUTPUT_OPTIONS], help="make a key pair for yourself (then send the .key)"
    )
    new.add_argument("principal", help="the name you will be admitted as: user.NAME")
    new.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="where the secret key goes (default: ~/.config/plantd/identity.key_secret)",
    )
    new.set_defaults(run=_new)


def _keyset(args: argparse.Namespace) -> KeySet:
    config = cli_config(args)
    owner = None
    if getattr(args, "owner", None):
        try:
            entry = pwd.getpwnam(args.owner)
        except KeyError:
            raise UsageError(f"--owner: no system user {args.owner!r}") from None
        owner = (entry.pw_uid, entry.pw_gid)
    return KeySet(config, owner=owner)


def _init(args: argparse.Namespace) -> int:
    keyset = _keyset(args)
    done = keyset.init(local_principals(keyset.config.source_dir), args.admin, certificate=True)
    human = "\n".join(done) if done else "every key is there already"
    emit(
        args,
        {"keys": str(keyset.keys_dir), "secrets": str(keyset.secrets_dir), "done": done},
        f"{human}\n(keys in {keyset.keys_dir}, secrets in {keyset.secrets_dir})",
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    keyset = _keyset(args)
    listed = keyset.list()
    rows = [f"{'PRINCIPAL':28} {'STATUS':10} {'ROLES':24} {'SECRET HERE':11} KEY"]
    for item in listed:
        rows.append(
            f"{item.principal:28} {item.status[:10]:10} {','.join(item.roles) or '-':24} "
            f"{'yes' if item.secret_here else 'no':11} {item.public[:12]}…"
        )
        if item.status.startswith("broken"):
            rows.append(f"    {item.path}: {item.status}")
    data = [
        {
            "principal": item.principal,
            "status": item.status,
            "roles": list(item.roles),
            "secret_here": item.secret_here,
            "public_key": item.public,
            "file": str(item.path),
        }
        for item in listed
    ]
    emit(args, data, "\n".join(rows))
    return 0


def _add(args: argparse.Namespace) -> int:
    keyset = _keyset(args)
    if args.generate is not None and args.generate.exists():
        raise UsageError(f"--generate: {args.generate} exists; not overwriting a secret key")
    path = keyset.add(
        args.principal,
        roles=tuple(args.role),
        public_file=args.key,
        generate_secret=args.generate,
        serve=tuple(args.serve),
        publish=tuple(args.publish),
        replace=args.replace,
    )
    human = f"{args.principal} admitted ({path})"
    if args.generate is not None:
        human += f"; its secret key is in {args.generate}: hand it over securely, then delete it"
    emit(args, {"principal": args.principal, "file": str(path)}, human)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    path = _keyset(args).revoke(args.principal)
    emit(
        args,
        {"principal": args.principal, "file": str(path)},
        f"{args.principal} revoked (kept as {path}); its connections are cut within a second",
    )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    path = _keyset(args).rotate(args.principal)
    emit(
        args,
        {"principal": args.principal, "file": str(path)},
        f"{args.principal} has a new key ({path}); the old one is revoked",
    )
    return 0


def _new(args: argparse.Namespace) -> int:
    if (problem := check_principal(args.principal)) is not None:
        raise UsageError(problem)
    out: Path = args.out or _default_identity(args.environ)
    if out.exists():
        raise SecurityError(f"{out} exists; not overwriting a secret key (use --out)")
    key = generate({"principal": args.principal})
    write_key_file(out, key, secret=True, comment=f"plantd SECRET key of {args.principal}")
    public = out.with_name(out.name.removesuffix(SECRET_SUFFIX) + PUBLIC_SUFFIX)
    write_key_file(public, key, secret=False, comment=f"plantd public key of {args.principal}")
    emit(
        args,
        {"secret": str(out), "public": str(public)},
        f"secret key: {out} (keep it)\npublic key: {public} — send it to an administrator, "
        f"who runs: plant keys add {args.principal} --key {public.name} --role ROLE",
    )
    return 0


def _default_identity(environ: dict[str, str]) -> Path:
    home = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME", "~"), ".config")
    return Path(home).expanduser() / "plantd" / f"identity{SECRET_SUFFIX}"
