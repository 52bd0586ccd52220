"""The Alarms and Control pages, and the alarm and control calls they make, over HTTP.

``TestAlarmPagesInProcess`` renders the two pages through the real page routes in-process
(the stand-in session middleware of test_pages.py): redirect without a session, the hooks the
scripts need, what the person's levels allow marked on the page, the CSP's rules obeyed.
``TestAlarmsOnTheStack`` uses a real ``plantd-proxy`` in front of a real ``plantd-control``
following the simulated pump station (``proxy_stack``): an alarm raised on the simulator is
listed, an operator acknowledges it through the REST API and the audit trail names the
operator (via service.proxy), a viewer is refused (403 problem) and nothing changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.observability.conftest import until
from tests.integration.proxy.conftest import ProxyStack
from tests.integration.proxy.test_pages import (
    ADMIN,
    OPERATOR,
    STATIC,
    VIEWER,
    app_client,
    get,
    hooks_in,
)

__all__ = ["app_client"]  # the fixture, used here by name

ALARMS = "/api/v1/services/org.plantd.Alarms"
CONTROL = "/api/v1/services/org.plantd.Control"
ALARM = "speed-setpoint-high"  # CONTROL_PLAN in conftest.py: station.speed_setpoint > 80
SIM_SETPOINT = "plc.speed_setpoint"


class TestAlarmPagesInProcess:
    @pytest.mark.parametrize("path", ["/alarms", "/control"])
    async def test_without_a_session_the_page_sends_to_login(
        self, app_client: httpx.AsyncClient, path: str
    ) -> None:
        answer = await get(app_client, path)
        assert answer.status_code == 303
        assert httpx.URL(answer.headers["location"]).params["next"] == path

    async def test_the_alarms_page_has_its_hooks_and_obeys_the_csp(
        self, app_client: httpx.AsyncClient
    ) -> None:
        answer = await get(app_client, "/alarms?view=unacknowledged", VIEWER)

        assert answer.status_code == 200
        html = answer.text
        wanted = {
            "alarms-table", "alarm-tab-current", "alarm-tab-history", "alarm-ack-all",
            "alarm-view-active", "alarm-view-unacknowledged", "alarm-view-all", "history-table",
            "alarm-dialog", "alarm-shelve-duration", "alarm-shelve-reason", "alarm-badge",
            "nav-alarms", "nav-control", "stream-status",
        }  # fmt: skip
        assert wanted <= hooks_in(html)
        assert 'data-view="unacknowledged"' in html
        assert 'aria-current="page"' in html
        assert 'data-testid="nav-alarms" aria-current' in html
        assert "<script>" not in html
        assert "style=" not in html
        assert " on" + "click=" not in html
        for name in re.findall(r'src="/static/([^"?]+)', html):
            assert (STATIC / name).is_file(), name
        assert {"alarms.js", "alarm-badge.js", "app.js"} <= set(
            re.findall(r'src="/static/([^"?]+)', html)
        )

    async def test_a_bad_view_falls_back_to_what_needs_attention(
        self, app_client: httpx.AsyncClient
    ) -> None:
        answer = await get(app_client, "/alarms?view=%3Cscript%3E", VIEWER)
        assert 'id="alarms-page" data-view="attention"' in answer.text
        assert "<script>" not in answer.text

    @pytest.mark.parametrize(("user", "may"), [(VIEWER, "false"), (ADMIN, "true")])
    async def test_the_pages_mark_what_the_persons_levels_cover(
        self, app_client: httpx.AsyncClient, user: Any, may: str
    ) -> None:
        # An admin holds every level, a viewer only read: true whatever level the policy asks.
        alarms = (await get(app_client, "/alarms", user)).text
        control = (await get(app_client, "/control", user)).text
        for name in ("ack", "shelve", "unshelve"):
            assert f'data-may-{name}="{may}"' in alarms
        for name in ("mode", "setpoint", "output", "reset"):
            assert f'data-may-{name}="{may}"' in control
        assert f'data-testid="alarm-ack-all" data-permitted="{may}"' in alarms.replace(
            "\n              ", " "
        )

    async def test_the_control_page_has_its_hooks(self, app_client: httpx.AsyncClient) -> None:
        answer = await get(app_client, "/control", OPERATOR)
        assert answer.status_code == 200
        wanted = {
            "loops-table", "interlocks-table", "calc-table", "control-dialog", "control-value",
            "control-summary", "control-confirm", "control-result", "nav-control",
        }  # fmt: skip
        assert wanted <= hooks_in(answer.text)
        assert "control.js" in answer.text


# -- on the stack -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clients(proxy_stack: ProxyStack) -> Iterator[dict[str, httpx.Client]]:
    made = {name: proxy_stack.client(name) for name in ("user.ada", "user.otto", "user.vera")}
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


def result(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def alarm_record(client: httpx.Client, name: str) -> dict[str, Any]:
    records = result(client.post(f"{ALARMS}/list", json={"state": "all"}))
    return next(r for r in records if r["alarm"] == name)


def refused(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["status"] == 403
    return body


class TestAlarmsOnTheStack:
    @pytest.mark.parametrize(
        ("who", "may"), [("user.vera", "false"), ("user.otto", "true"), ("user.ada", "true")]
    )
    def test_the_pages_render_for_everyone_and_mark_what_each_may_do(
        self, clients: dict[str, httpx.Client], who: str, may: str
    ) -> None:
        alarms = clients[who].get("/alarms")
        control = clients[who].get("/control")

        assert alarms.status_code == control.status_code == 200
        assert f'data-may-ack="{may}"' in alarms.text
        assert 'data-may-history="true"' in alarms.text  # reading is everyone's
        assert f'data-may-mode="{may}"' in control.text
        assert {"nav-alarms", "nav-control", "alarm-badge"} <= hooks_in(alarms.text)

    def test_the_control_list_has_the_loop_interlock_and_calc(
        self, clients: dict[str, httpx.Client]
    ) -> None:
        listed = result(clients["user.vera"].get(f"{CONTROL}/list"))

        loop = next(entry for entry in listed["loops"] if entry["name"] == "speed")
        assert (loop["operator_mode"], loop["output_point"]) == ("manual", "station.speed_setpoint")
        lock = next(entry for entry in listed["interlocks"] if entry["name"] == "speed-limit")
        assert lock["state"] == "normal"
        assert [c["point"] for c in listed["calc"]] == ["calc.speed_half"]

    def test_an_operator_acknowledges_and_the_audit_names_the_operator(
        self, proxy_stack: ProxyStack, clients: dict[str, httpx.Client]
    ) -> None:
        otto, vera, ada = clients["user.otto"], clients["user.vera"], clients["user.ada"]
        done = proxy_stack.plant("sim", "set", "pump-station", SIM_SETPOINT, "90")
        assert done.returncode == 0, done.stderr
        raised = until(
            lambda: (r := alarm_record(vera, ALARM))["state"] == "unacknowledged" and r,
            f"{ALARM} raised",
            30.0,
        )
        assert raised["active"]
        assert not raised["acknowledged"]
        assert raised["priority"] == "high"
        assert raised["value"] >= 80

        # A viewer may look but not acknowledge, shelve or change a loop: the problem says so.
        body = refused(vera.post(f"{ALARMS}/ack", json={"alarm": ALARM}))
        assert "user.vera" in body["detail"]
        refused(vera.post(f"{ALARMS}/shelve", json={"alarm": ALARM, "duration": 600}))
        refused(vera.post(f"{CONTROL}/mode", json={"loop": "speed", "mode": "auto"}))
        assert alarm_record(vera, ALARM)["state"] == "unacknowledged"

        events = result(otto.post(f"{ALARMS}/ack", json={"alarm": ALARM, "comment": "seen"}))
        assert [(e["alarm"], e["transition"], e["by"]) for e in events] == [
            (ALARM, "acknowledged", "user.otto")
        ]
        assert alarm_record(vera, ALARM)["state"] == "acknowledged"

        history = result(vera.post(f"{ALARMS}/history", json={"alarm": ALARM, "limit": 10}))
        assert [h["transition"] for h in history[:2]] == ["acknowledged", "raised"]
        assert (history[0]["by"], history[0]["comment"]) == ("user.otto", "seen")

        def acks() -> list[dict[str, Any]]:
            records = result(
                ada.post("/api/v1/services/org.plantd.Audit/query", json={"principal": "user.otto"})
            )["records"]
            return [r for r in records if r["target"] == "org.plantd.Alarms ack"]

        audited = until(acks, "the acknowledgement is audited", 30.0)
        assert [(r["principal"], r["source"], r["result"]) for r in audited] == [
            ("user.otto", "via service.proxy", "ok")
        ]
        assert json.loads(audited[0]["detail"])["alarm"] == ALARM

        # Back below the limit minus the deadband: the acknowledged alarm clears to normal.
        done = proxy_stack.plant("sim", "set", "pump-station", SIM_SETPOINT, "40")
        assert done.returncode == 0, done.stderr
        until(lambda: alarm_record(vera, ALARM)["state"] == "normal", f"{ALARM} clears", 30.0)

    def test_an_operator_shelves_and_unshelves(self, clients: dict[str, httpx.Client]) -> None:
        otto, vera = clients["user.otto"], clients["user.vera"]
        shelved = result(
            otto.post(
                f"{ALARMS}/shelve",
                json={"alarm": "motor-current-high", "duration": 900, "reason": "repair"},
            )
        )
        assert [(e["transition"], e["shelved"], e["by"]) for e in shelved] == [
            ("shelved", True, "user.otto")
        ]
        assert alarm_record(vera, "motor-current-high")["shelved"] is True
        refused(vera.post(f"{ALARMS}/unshelve", json={"alarm": "motor-current-high"}))
        unshelved = result(otto.post(f"{ALARMS}/unshelve", json={"alarm": "motor-current-high"}))
        assert [e["transition"] for e in unshelved] == ["unshelved"]
        assert alarm_record(vera, "motor-current-high")["shelved"] is False
