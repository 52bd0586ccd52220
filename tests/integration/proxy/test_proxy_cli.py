"""``plant proxy passwd`` and ``plant proxy token …`` as real commands on a CURVE configuration,
and what they write working in the proxy: the password logs in, the token authenticates (the
auth part's routes and middleware over the same proxy.db, through httpx)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import stat
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from plantd.client import AsyncClient
from plantd.config import load_config
from plantd.proxy._auth import middleware, routes
from plantd.proxy._context import ProxyContext
from plantd.proxy._people import People
from plantd.proxy._problems import Problem, problem_response
from plantd.security import use_identity
from plantd.testing import ManualClock, write_config

pytestmark = [pytest.mark.timeout(120)]

PASSWORD = "alice-correct-horse"
DAY = 86400.0


def plant(
    config_dir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantd.cli", "--config", str(config_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


def plant_json(config_dir: Path, *args: str, stdin: str | None = None) -> Any:
    done = plant(config_dir, *args, "--json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A CURVE configuration with its keys, and alice admitted as an operator."""
    directory = write_config(
        tmp_path / "etc",
        {
            "security": {"mode": "curve"},
            "paths": {"data": str(tmp_path / "data"), "run": str(tmp_path / "run")},
        },
    )
    use_identity(None)  # write_config's key making must not leave an identity behind
    secret = tmp_path / "alice.key_secret"
    done = plant(
        directory, "keys", "add", "user.alice", "--generate", str(secret), "--role", "operator"
    )
    assert done.returncode == 0, done.stderr
    return directory


def database(config_dir: Path) -> Path:
    config = load_config(config_dir, {})
    return config.proxy.database_path(config.paths)


# -- passwd -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "user.alice"])
def test_passwd_from_stdin(config_dir: Path, name: str) -> None:
    done = plant(config_dir, "proxy", "passwd", name, "--password-stdin", stdin=PASSWORD + "\n")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "user.alice: web password set (their other web sessions are ended)\n"
    assert stat.S_IMODE(database(config_dir).stat().st_mode) == 0o600
    assert PASSWORD.encode() not in database(config_dir).read_bytes()


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-one", "a password needs at least 10 characters"),
        ("user.alice", "a password may not be the user's name"),
        ("USER.ALICE\n", "a password may not be the user's name"),
    ],
)
def test_passwd_refuses_a_weak_password_naming_the_rule(
    config_dir: Path, password: str, rule: str
) -> None:
    done = plant(config_dir, "proxy", "passwd", "alice", "--password-stdin", stdin=password)
    assert done.returncode == 1
    assert done.stderr == f"plant: error: password refused: {rule}\n"


def test_passwd_refuses_the_users_own_name(tmp_path: Path, config_dir: Path) -> None:
    secret = tmp_path / "longname.key_secret"
    assert (
        plant(config_dir, "keys", "add", "user.long-name-1", "--generate", str(secret)).returncode
        == 0
    )
    done = plant(
        config_dir, "proxy", "passwd", "long-name-1", "--password-stdin", stdin="long-name-1\n"
    )
    assert done.returncode == 1
    assert done.stderr == "plant: error: password refused: a password may not be the user's name\n"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("nobody", "user.nobody is not admitted (no key in "),
        ("nobody", "plant keys add user.nobody --generate nobody.key_secret --role operator"),
        ("service.echo", "service.echo is not a person"),
        ("user.a b", "user.a b"),
    ],
)
def test_passwd_refuses_someone_who_is_not_an_admitted_person(
    config_dir: Path, name: str, says: str
) -> None:
    done = plant(config_dir, "proxy", "passwd", name, "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 1
    assert done.stderr.startswith("plant: error: ")
    assert says in done.stderr


def test_passwd_of_a_revoked_person_says_so(config_dir: Path) -> None:
    assert plant(config_dir, "keys", "revoke", "user.alice").returncode == 0
    done = plant(config_dir, "proxy", "passwd", "alice", "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 1
    assert "user.alice was revoked" in done.stderr


def test_passwd_without_a_terminal_asks_for_password_stdin(config_dir: Path) -> None:
    done = plant(config_dir, "proxy", "passwd", "alice", stdin="")
    assert done.returncode == 1
    assert "--password-stdin" in done.stderr
    done = plant(config_dir, "proxy", "passwd", "alice", "--password-stdin", stdin="")
    assert done.returncode == 1
    assert "nothing on standard input" in done.stderr


def on_a_terminal(config_dir: Path, *args: str, answers: list[str]) -> tuple[int, str]:
    """``plant ARGS`` with a pseudo-terminal as its controlling terminal; each answer is typed
    after the next prompt (a line ending in ": "). Returns the exit status and the screen."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "plantd.cli", "--config", str(config_dir), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        # the terminal becomes the new session's controlling one, which getpass opens
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
    )
    os.close(slave)
    screen = b""
    try:
        for answer in answers:
            # getpass flushes what was typed ahead of its prompt: wait for each prompt
            since = b""
            while not since.endswith(b": "):
                ready, _, _ = select.select([master], [], [], 30)
                assert ready, f"no prompt; the screen so far: {screen + since!r}"
                since += os.read(master, 1024)
            screen += since
            os.write(master, answer.encode() + b"\n")
        code = process.wait(timeout=60)
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # the other side is closed: all read
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, screen.decode(errors="replace")


def test_passwd_on_a_terminal_asks_twice_without_echo(config_dir: Path) -> None:
    code, screen = on_a_terminal(
        config_dir, "proxy", "passwd", "alice", answers=[PASSWORD, PASSWORD]
    )
    assert code == 0, screen
    assert "new web password for user.alice: " in screen
    assert "again: " in screen
    assert PASSWORD not in screen  # not echoed
    assert "web password set" in screen
    code, screen = on_a_terminal(
        config_dir, "proxy", "passwd", "alice", answers=[PASSWORD, PASSWORD + "x"]
    )
    assert code == 1
    assert "the two passwords differ; nothing changed" in screen


def test_passwd_remove(config_dir: Path) -> None:
    plant(config_dir, "proxy", "passwd", "alice", "--password-stdin", stdin=PASSWORD)
    assert plant_json(config_dir, "proxy", "passwd", "alice", "--remove") == {
        "principal": "user.alice",
        "removed": True,
    }
    done = plant(config_dir, "proxy", "passwd", "alice", "--remove")
    assert done.stdout == "user.alice had no web password\n"


# -- tokens -------------------------------------------------------------------------------------


def test_token_create_list_revoke(config_dir: Path) -> None:
    made = plant_json(config_dir, "proxy", "token", "create", "alice", "--name", "grafana")
    assert made["principal"] == "user.alice"
    assert made["name"] == "grafana"
    assert made["token"].startswith(f"pdt_{made['id']}_")
    assert made["expires"] == pytest.approx(made["created"] + 90 * DAY)
    forever = plant_json(
        config_dir,
        "proxy",
        "token",
        "create",
        "user.alice",
        "--name",
        "scada",
        "--expires",
        "never",
    )
    assert forever["expires"] is None
    assert made["token"].encode() not in database(config_dir).read_bytes()

    listed = plant_json(config_dir, "proxy", "token", "list")
    assert [(t["id"], t["name"], t["expired"]) for t in listed] == [
        (made["id"], "grafana", False),
        (forever["id"], "scada", False),
    ]
    assert all("token" not in t for t in listed)  # the secret is never shown again
    assert len(plant_json(config_dir, "proxy", "token", "list", "alice")) == 2
    assert plant_json(config_dir, "proxy", "token", "list", "bob") == []
    human = plant(config_dir, "proxy", "token", "list").stdout.splitlines()
    assert human[0].split() == ["ID", "PRINCIPAL", "NAME", "CREATED", "EXPIRES", "LAST", "USED"]
    assert human[1].split()[:3] == [made["id"], "user.alice", "grafana"]

    done = plant(config_dir, "proxy", "token", "revoke", made["id"])
    assert (done.returncode, done.stdout) == (0, f"token {made['id']} revoked\n")
    again = plant(config_dir, "proxy", "token", "revoke", made["id"])
    assert again.returncode == 1
    assert again.stderr == (
        f"plant: error: no token {made['id']!r} (plant proxy token list shows them)\n"
    )
    assert [t["id"] for t in plant_json(config_dir, "proxy", "token", "list")] == [forever["id"]]


def test_token_create_human_output_shows_the_secret_once(config_dir: Path) -> None:
    done = plant(
        config_dir, "proxy", "token", "create", "alice", "--name", "ci", "--expires", "12h"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pdt_")  # the secret alone: TOKEN=$(plant proxy token …)
    assert done.stdout.count("\n") == 1
    assert done.stderr.startswith("token ")
    assert "for user.alice (ci), expires " in done.stderr
    assert "not shown again" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nobody", "--name", "x"], "user.nobody is not admitted"),
        (["alice", "--name", "x", "--expires", "soon"], "--expires: expected a duration"),
        (["alice", "--name", "x", "--expires", "0s"], "--expires: expected a duration"),
        (["alice", "--name", "  "], "a token needs a name"),
    ],
)
def test_token_create_refuses_bad_input(config_dir: Path, args: list[str], says: str) -> None:
    done = plant(config_dir, "proxy", "token", "create", *args)
    assert done.returncode == 1
    assert says in done.stderr
    assert plant_json(config_dir, "proxy", "token", "list") == []


def test_keys_init_makes_the_device_certificate(config_dir: Path) -> None:
    done = plant(config_dir, "keys", "init")
    assert done.returncode == 0, done.stderr
    assert "tls: new device certificate for " in done.stdout
    config = load_config(config_dir, {})
    assert (config.security.keys_dir(config.source_dir) / "tls" / "device.crt").exists()
    again = plant(config_dir, "keys", "init")
    assert "tls:" not in again.stdout


# -- what the commands wrote, used by the proxy ------------------------------------------------


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


@pytest.fixture
async def proxy(config_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The proxy's auth part over the config's proxy.db, as an ASGI app behind httpx."""
    config = load_config(config_dir, {})
    clock = ManualClock()
    client = AsyncClient(config.broker.endpoint)
    ctx = ProxyContext(config, clock, People(config, clock), client, delegate=True)
    app = Starlette(
        routes=routes(ctx), middleware=middleware(ctx), exception_handlers={Problem: _problem}
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as http:
            yield http
    finally:
        for hook in ctx.shutdown:
            await hook()
        await client.aclose()


async def test_the_password_and_token_work_in_the_proxy(
    config_dir: Path, proxy: httpx.AsyncClient
) -> None:
    plant(config_dir, "proxy", "passwd", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    token = plant_json(config_dir, "proxy", "token", "create", "alice", "--name", "ci")
    answer = await proxy.post("/api/v1/login", json={"user": "alice", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    assert answer.json()["roles"] == ["operator"]
    me = await proxy.get("/api/v1/me", headers={"Authorization": f"Bearer {token['token']}"})
    assert me.status_code == 200
    assert me.json()["by"] == "token"

    # A new password ends the session at once; a revoked token is refused at once.
    plant(config_dir, "proxy", "passwd", "alice", "--password-stdin", stdin="another-password")
    assert (await proxy.get("/api/v1/me")).status_code == 401
    plant(config_dir, "proxy", "token", "revoke", token["id"])
    bearer = {"Authorization": f"Bearer {token['token']}"}
    assert (await proxy.get("/api/v1/me", headers=bearer)).status_code == 401
