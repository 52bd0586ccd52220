"""Updates through a real ``plantd-proxy``: the bundle an admin sends lands complete as
``<paths.data>/update/incoming.raucb`` (what plantd-update.path waits for), and nothing lands
for anybody else, for an empty body, or while an install is in progress; ``GET
/api/v1/system`` shows what the root side wrote (status.json, slots.json); the System page
renders for an admin (with the upload form) and a viewer (without).

A broker and the proxy suffice (one per module): no root service runs here, so a bundle sent
stays where the proxy put it, as it would until plantd-update.service takes it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from plantd.config import load_config
from plantd.proxy._system import MAX_BUNDLE_BYTES
from plantd.security import use_identity, user_identity
from plantd.system._incoming import (
    INCOMING,
    INCOMING_INFO,
    PART,
    SLOTS_FILE,
    STATUS_FILE,
    write_json,
)
from tests.conftest import make_stack
from tests.integration.proxy.conftest import login, set_passwords, start_proxy

UPDATE = "/api/v1/system/update"
OCTETS = {"Content-Type": "application/octet-stream"}
# Three and a bit MiB: more than one write batch, not a whole one at the end.
BUNDLE = hashlib.sha256(b"bundle").digest() * (100 * 1024 + 7)


class Proxy:
    def __init__(self, url: str, data: Path, config_dir: Path) -> None:
        self.url = url
        self.update_dir = data / "update"
        self.config_dir = config_dir

    def client(self, principal: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30.0)
        login(client, principal)
        return client

    def clear(self) -> None:
        if self.update_dir.is_dir():
            for path in self.update_dir.iterdir():
                path.unlink()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    base = tmp_path_factory.mktemp("system")
    stack = make_stack(base, security={"mode": "curve"})
    use_identity(user_identity(load_config(stack.config_dir), {}))
    try:
        stack.start_broker()
        set_passwords(stack)
        _, url = start_proxy(stack)
        yield Proxy(url, base / "data", stack.config_dir)
    except BaseException:
        print(stack.logs())
        raise
    finally:
        use_identity(None)
        for process in stack.processes:
            process.kill()


@pytest.fixture(scope="module")
def clients(proxy: Proxy) -> Iterator[dict[str, httpx.Client]]:
    made = {name: proxy.client(name) for name in ("user.ada", "user.otto", "user.vera")}
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


@pytest.fixture(autouse=True)
def empty(proxy: Proxy) -> Iterator[None]:
    proxy.clear()
    yield
    proxy.clear()


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    return body


def nothing_dropped(proxy: Proxy) -> None:
    for name in (INCOMING, PART, INCOMING_INFO):
        assert not (proxy.update_dir / name).exists(), name


def test_an_admins_bundle_lands_complete_for_the_root_side(
    proxy: Proxy, clients: dict[str, httpx.Client]
) -> None:
    answer = clients["user.ada"].post(
        UPDATE, params={"name": "plantd-1.2.raucb"}, content=BUNDLE, headers=OCTETS
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == "/api/v1/system"
    body = answer.json()
    digest = hashlib.sha256(BUNDLE).hexdigest()
    assert (body["name"], body["bytes"], body["sha256"], body["by"], body["status"]) == (
        "plantd-1.2.raucb",
        len(BUNDLE),
        digest,
        "user.ada",
        "/api/v1/system",
    )
    assert (proxy.update_dir / INCOMING).read_bytes() == BUNDLE
    assert not (proxy.update_dir / PART).exists()
    info = json.loads((proxy.update_dir / INCOMING_INFO).read_text())
    assert (info["by"], info["sha256"], info["bytes"]) == ("user.ada", digest, len(BUNDLE))
    # it waits for the root side: a second bundle is refused, and the status says it waits
    again = clients["user.ada"].post(UPDATE, content=b"more", headers=OCTETS)
    assert problem(again, 409)["code"] == "proxy.update-in-progress"
    assert (proxy.update_dir / INCOMING).read_bytes() == BUNDLE
    assert clients["user.vera"].get("/api/v1/system").json()["pending"] is True


def test_an_admins_api_token_may_send_one_too(proxy: Proxy) -> None:
    """No session, no CSRF token: a bearer token (a scripted rollout's way)."""
    plant = [sys.executable, "-m", "plantd.cli", "--config", str(proxy.config_dir)]
    done = subprocess.run(
        [*plant, "proxy", "token", "create", "user.ada", "--name", "rollout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    with httpx.Client(base_url=proxy.url, timeout=30.0) as bare:
        answer = bare.post(
            UPDATE, content=b"x" * 10, headers={**OCTETS, "Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 202, answer.text
    assert (proxy.update_dir / INCOMING).read_bytes() == b"x" * 10


@pytest.mark.parametrize("who", ["user.vera", "user.otto"])
def test_no_one_but_an_admin_may_send_a_bundle(
    proxy: Proxy, clients: dict[str, httpx.Client], who: str
) -> None:
    body = problem(clients[who].post(UPDATE, content=BUNDLE, headers=OCTETS), 403)
    assert body["code"] == "proxy.forbidden"
    assert "'admin'" in body["detail"]
    nothing_dropped(proxy)


def test_nothing_is_taken_while_an_install_is_in_progress(
    proxy: Proxy, clients: dict[str, httpx.Client]
) -> None:
    proxy.update_dir.mkdir(exist_ok=True)
    for state in ("installing", "rebooting"):
        write_json(proxy.update_dir / STATUS_FILE, {"state": state, "bundle": "old.raucb"})
        body = problem(clients["user.ada"].post(UPDATE, content=BUNDLE, headers=OCTETS), 409)
        assert body["code"] == "proxy.update-in-progress"
        assert state in body["detail"]
        nothing_dropped(proxy)
    # a status from before this boot (an install a power cut ended) refuses nothing
    os.utime(proxy.update_dir / STATUS_FILE, (0, 0))
    assert clients["user.ada"].post(UPDATE, content=b"z", headers=OCTETS).status_code == 202
    (proxy.update_dir / INCOMING).unlink()
    # once it has ended (failed, say), a new bundle is taken
    write_json(proxy.update_dir / STATUS_FILE, {"state": "failed", "message": "bad signature"})
    assert clients["user.ada"].post(UPDATE, content=b"y", headers=OCTETS).status_code == 202


def test_an_empty_body_or_another_media_type_is_refused(
    proxy: Proxy, clients: dict[str, httpx.Client]
) -> None:
    admin = clients["user.ada"]
    assert "empty" in problem(admin.post(UPDATE, content=b"", headers=OCTETS), 400)["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: found empty only once read
        yield from ()

    assert "empty" in problem(admin.post(UPDATE, content=chunks(), headers=OCTETS), 400)["detail"]
    json_body = admin.post(UPDATE, json={"bundle": "x"})
    assert problem(json_body, 415)["code"] == "proxy.unsupported-media-type"
    nothing_dropped(proxy)


def test_a_declared_size_above_the_maximum_is_refused_before_reading(
    proxy: Proxy, clients: dict[str, httpx.Client]
) -> None:
    url = urllib.parse.urlsplit(proxy.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.putrequest("POST", UPDATE)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(MAX_BUNDLE_BYTES + 1))
        admin = clients["user.ada"]
        connection.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in admin.cookies.items()))
        connection.putheader("X-CSRF-Token", admin.headers["X-CSRF-Token"])
        connection.endheaders()
        answer = connection.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read())["code"] == "proxy.too-large"
    finally:
        connection.close()
    nothing_dropped(proxy)


def test_the_status_route_reads_what_the_root_side_wrote(
    proxy: Proxy, clients: dict[str, httpx.Client]
) -> None:
    viewer = clients["user.vera"]
    proxy.update_dir.mkdir(exist_ok=True)
    assert viewer.get("/api/v1/system").json() == {
        "update": {"state": "idle"},
        "slots": None,
        "pending": False,
        "max_bundle_bytes": MAX_BUNDLE_BYTES,
    }
    status = {
        "state": "failed",
        "bundle": "plantd-1.3.raucb",
        "by": "user.ada",
        "message": "LastError: signature verification failed",
        "started": "2026-12-07T12:00:00Z",
        "finished": "2026-12-07T12:01:00Z",
    }
    slots = {"booted": "a", "primary": "a", "slots": {"a": "good", "b": "bad"}}
    write_json(proxy.update_dir / STATUS_FILE, status)
    write_json(proxy.update_dir / SLOTS_FILE, slots)
    answer = viewer.get("/api/v1/system")
    assert answer.status_code == 200, answer.text
    assert answer.json()["update"] == status
    assert answer.json()["slots"] == slots
    with httpx.Client(base_url=proxy.url) as nobody:
        assert problem(nobody.get("/api/v1/system"), 401)["code"] == "proxy.unauthenticated"


def test_the_openapi_document_lists_both_routes(clients: dict[str, httpx.Client]) -> None:
    paths = clients["user.vera"].get("/api/v1/openapi.json").json()["paths"]
    assert paths["/api/v1/system"]["get"]["x-plantd-access"] == "read"
    update = paths[UPDATE]["post"]
    assert update["x-plantd-access"] == "admin"
    assert "application/octet-stream" in update["requestBody"]["content"]
    assert {"202", "400", "403", "409", "413", "507"} <= set(update["responses"])


@pytest.mark.parametrize(("who", "form"), [("user.ada", True), ("user.vera", False)])
def test_the_system_page_renders_with_the_form_for_an_admin_only(
    clients: dict[str, httpx.Client], who: str, form: bool
) -> None:
    page = clients[who].get("/system")
    assert page.status_code == 200
    assert 'data-testid="nav-system"' in page.text
    assert 'data-testid="slots-table"' in page.text
    assert ('data-testid="update-form"' in page.text) is form
    assert ('data-testid="update-not-permitted"' in page.text) is not form
    assert "/static/system.js?v=" in page.text
    script = clients[who].get(page.text.split('src="')[-1].split('"')[0])
    assert script.status_code == 200
