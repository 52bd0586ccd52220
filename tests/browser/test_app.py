"""The web app in a real headless browser (Debian's chromium, driven by Playwright), in front of
a real stack: the pump station simulator, the ``station`` Modbus module polling it every
200 ms, state, historian, logger and ``plantd-proxy`` (``proxy_stack``).

What a person does, through the pages only: log in with the form and see the dashboard's
health verdict; watch the live point table follow a simulated device; write a setpoint with
the confirmation dialog and find it on the device and in the audit; be refused a write as a
viewer; see a trend drawn from the historian. Each test saves screenshots at the panel PC's
1366×768 and at a phone's 360×640 (see conftest.py for where).

The only time limit on the code under test is the issue's own: the live table shows a device
change within 1 s (see :func:`test_live_table_follows_a_simulated_device`). Every other wait
is a generous bound on something that must happen (10–30 s), not a measure of speed.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, Opener
from tests.integration.proxy.conftest import ProxyStack, until

SETPOINT = "data.station.speed_setpoint"
SIM_SETPOINT = "plc.speed_setpoint"
WRITE = "/api/v1/services/org.plantd.module.station/write"

POLL_INTERVAL = 0.2  # the station module's poll interval in proxy_stack (write_station)
LIVE_BUDGET = 1.0  # the issue: the live table updates within 1 s of a device change


def row_selector(topic: str) -> str:
    return f'[data-testid="point-row"][data-topic="{topic}"]'


def shown_value(page: Page, topic: str) -> Any:
    """The value a point's row shows (its cell's ``data-value``, JSON), None before any."""
    text = (
        page.locator(row_selector(topic)).get_by_test_id("point-value").get_attribute("data-value")
    )
    return None if text is None else json.loads(text)


def near(value: Any, wanted: float) -> bool:
    # Scaled Modbus registers (scale 0.1) come back as 72.00000000000001.
    return isinstance(value, (int, float)) and abs(value - wanted) < 0.05


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1366x768", "360x640"])
def test_log_in_and_see_the_dashboard(open_page: Opener, viewport: Any) -> None:
    """A page without a session sends the browser to the login form; a wrong password is
    refused there in words; the right one lands on the dashboard, which shows who is logged
    in and the stack's health verdict."""
    screen = open_page(viewport)
    page = screen.page
    page.goto(screen.url("/"))
    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
    expect(page.get_by_test_id("login-form")).to_be_visible()
    screen.shoot("login")
    if viewport == DESKTOP:  # one failure only: the login throttle counts them per person
        page.get_by_test_id("login-user").fill("user.otto")
        page.get_by_test_id("login-password").fill("not-otto-s-password")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-error")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/login(\?|$)"))
        screen.shoot("login-refused")

    screen.log_in("user.otto")

    expect(page.get_by_test_id("user-name")).to_have_text(re.compile(r"otto"))
    verdict = page.get_by_test_id("health-verdict")
    expect(verdict).to_have_attribute("data-verdict", re.compile(r"^(ok|degraded|failed)$"))
    expect(verdict).to_be_visible()
    expect(page.get_by_test_id("service-row").first).to_be_visible()
    screen.shoot("dashboard")


def test_live_table_follows_a_simulated_device(
    open_page: Opener, proxy_stack: ProxyStack, record_property: Any
) -> None:
    """The live table shows a simulated device change within 1 s.

    How it is measured: the page is open and its stream live; a MutationObserver installed in
    the page notes the browser's wall-clock time (``Date.now()``, the same clock as the
    test's ``time.time()``: one machine) at which the setpoint row's value cell first shows
    the new value. The change is made with ``plant sim set pump-station plc.speed_setpoint
    V``, which returns once the simulator holds V: the time it returned is when the change is
    visible at the simulator side. The station module polls every 200 ms, so a change can
    wait up to one poll interval before anything reads it; the issue's 1 s runs from there.
    So the page must show V by (return time + 200 ms + 1 s): that deadline is the timeout of
    the wait, computed from the return time (not from when the wait starts). The observed
    latency is printed and recorded as a JUnit property, from the return (and from the start)
    of ``plant sim set``.
    """
    screen = open_page(DESKTOP)
    page = screen.page
    screen.log_in("user.otto", "/points")
    expect(page.get_by_test_id("points-table")).to_be_visible()
    row = page.get_by_test_id("points-table").locator(row_selector(SETPOINT))
    expect(row).to_be_visible()
    expect(row.get_by_test_id("point-value")).to_have_attribute("data-value", re.compile("."))
    expect(page.get_by_test_id("stream-status")).to_have_attribute("data-state", "live")
    before = shown_value(page, SETPOINT)
    target = 34.0 if near(before, 33.0) else 33.0

    page.evaluate(
        """([selector, target]) => {
            const cell = document.querySelector(selector + ' [data-testid="point-value"]');
            window.plantdSeenAt = null;
            const check = () => {
                const value = JSON.parse(cell.dataset.value ?? "null");
                if (window.plantdSeenAt === null && typeof value === "number"
                    && Math.abs(value - target) < 0.05) window.plantdSeenAt = Date.now();
            };
            new MutationObserver(check).observe(cell, {
                attributes: true, childList: true, characterData: true, subtree: true,
            });
        }""",
        [row_selector(SETPOINT), target],
    )
    started = time.time()
    done = proxy_stack.plant("sim", "set", "pump-station", SIM_SETPOINT, json.dumps(target))
    returned = time.time()
    assert done.returncode == 0, done.stderr
    deadline = returned + POLL_INTERVAL + LIVE_BUDGET
    page.wait_for_function(
        "() => window.plantdSeenAt !== null",
        timeout=max(1.0, (deadline - time.time()) * 1000),
    )
    seen = page.evaluate("() => window.plantdSeenAt") / 1000
    latency, since_start = seen - returned, seen - started
    print(
        f"live table: {SETPOINT} = {target:g} shown {latency * 1000:.0f} ms after "
        f"`plant sim set` returned ({since_start * 1000:.0f} ms after it started)"
    )
    record_property("live_update_ms_after_sim_set", round(latency * 1000))
    record_property("live_update_ms_after_sim_set_started", round(since_start * 1000))
    assert seen >= started, "the value was shown before the simulator was even asked"
    assert latency <= POLL_INTERVAL + LIVE_BUDGET
    expect(row.get_by_test_id("point-quality")).to_have_text("good")
    screen.shoot("points")

    page.set_viewport_size(PHONE)
    expect(row).to_be_visible()
    expect(row.get_by_test_id("point-value")).to_be_visible()
    screen.shoot("points")


def test_setpoint_write_round_trips_and_is_audited(
    open_page: Opener, proxy_stack: ProxyStack
) -> None:
    """An operator writes 72 with the two-step dialog (value, then a confirmation naming
    what goes where); the simulated PLC then holds 72, the live table shows it, and an admin
    finds the write in the audit: user.otto, ``org.plantd.module.station write``, ok, made
    via service.proxy (the proxy acted for the person)."""
    screen = open_page(DESKTOP)
    page = screen.page
    screen.log_in("user.otto", "/points")
    row = page.locator(row_selector(SETPOINT))
    expect(row).to_be_visible()
    assert not near(proxy_stack.sim_value(SIM_SETPOINT), 72.0), "the test needs another value"

    row.get_by_test_id("write-button").click()
    dialog = page.get_by_test_id("write-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("write-value").fill("72")
    screen.shoot("write-value")
    dialog.get_by_test_id("write-next").click()
    expect(dialog.get_by_test_id("write-summary")).to_contain_text("72")
    expect(dialog.get_by_test_id("write-summary")).to_contain_text("speed_setpoint")
    screen.shoot("write-confirm")
    dialog.get_by_test_id("write-confirm").click()
    result = dialog.get_by_test_id("write-result")
    expect(result).to_have_attribute("data-status", "ok")
    expect(result).to_contain_text("72")
    screen.shoot("write-done")

    # The module answered the write once the PLC took it: the device holds it now.
    assert near(proxy_stack.sim_value(SIM_SETPOINT), 72.0)
    dialog.get_by_test_id("write-close").click()
    page.wait_for_function(
        """(selector) => {
            const cell = document.querySelector(selector + ' [data-testid="point-value"]');
            const value = JSON.parse(cell.dataset.value ?? "null");
            return typeof value === "number" && Math.abs(value - 72) < 0.05;
        }""",
        arg=row_selector(SETPOINT),
        timeout=10_000,
    )

    admin = open_page(DESKTOP)
    admin.log_in("user.ada", "/audit")
    rows = audit_rows_until(admin.page, "user.otto", "org.plantd.module.station write")
    ours = [r for r in rows if r["result"] == "ok" and r["source"] == "via service.proxy"]
    assert ours, f"no ok write via service.proxy in the audit rows {rows}"
    assert any('"value": 72' in r["detail"] or '"value":72' in r["detail"] for r in ours), ours
    admin.shoot("audit")
    admin.page.set_viewport_size(PHONE)
    expect(admin.page.get_by_test_id("audit-row").first).to_be_visible()
    admin.shoot("audit")


def audit_rows_until(page: Page, principal: str, target: str) -> list[dict[str, str]]:
    """The audit page's rows for ``principal`` and ``target`` (the filters filled in and
    searched again until there is one: the broker writes its audit records asynchronously)."""
    page.get_by_test_id("audit-principal").fill(principal)
    page.get_by_test_id("audit-target").fill(target)

    def found() -> list[dict[str, str]] | None:
        with page.expect_response(lambda answer: "/org.plantd.Audit/query" in answer.url):
            page.get_by_test_id("audit-refresh").click()
        page.wait_for_load_state()
        rows: list[dict[str, str]] = page.evaluate(
            """() => [...document.querySelectorAll('[data-testid="audit-row"]')].map((tr) => {
                const cells = [...tr.cells].map((td) => td.textContent);
                return {principal: cells[1], action: cells[2], target: cells[3],
                        result: cells[4], source: cells[5], detail: cells[6]};
            })"""
        )
        wanted = [r for r in rows if r["principal"] == principal and r["target"] == target]
        return wanted or None

    return until(found, f"an audit row of {principal} on {target!r}", 30.0)


def test_a_viewer_is_refused_the_write(open_page: Opener, proxy_stack: ProxyStack) -> None:
    """A viewer's write is refused with 403: through the API (an RFC 9457 problem) and in
    the browser, where the write button is marked as not permitted and, tried anyway, the
    dialog shows the refusal; the simulated device never changes."""
    device_before = proxy_stack.sim_value(SIM_SETPOINT)
    refused = 5.0 if not near(device_before, 5.0) else 6.0

    client = proxy_stack.client("user.vera")
    try:
        answer = client.post(WRITE, json={"point": "speed_setpoint", "value": refused})
    finally:
        client.close()
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["status"] == 403

    screen = open_page(PHONE)
    page = screen.page
    screen.log_in("user.vera", "/points")
    row = page.locator(row_selector(SETPOINT))
    expect(row).to_be_visible()
    buttons = row.get_by_test_id("write-button")
    if buttons.count() == 0:
        # An app that hides the button from a viewer: nothing to press (the API refuses).
        expect(page.get_by_test_id("write-button")).to_have_count(0)
        screen.shoot("no-write-button")
    else:
        expect(buttons).to_have_attribute("data-permitted", "false")
        buttons.click()
        dialog = page.get_by_test_id("write-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_test_id("write-permission")).to_be_visible()
        dialog.get_by_test_id("write-value").fill(json.dumps(refused))
        dialog.get_by_test_id("write-next").click()
        dialog.get_by_test_id("write-confirm").click()
        result = dialog.get_by_test_id("write-result")
        expect(result).to_have_attribute("data-status", "error")
        expect(result).to_have_attribute("data-http", "403")
        expect(result).to_be_visible()
        screen.shoot("write-refused")
    assert near(proxy_stack.sim_value(SIM_SETPOINT), float(device_before))
    page.set_viewport_size(DESKTOP)
    screen.shoot("points-viewer")


def test_trend_chart_draws_historian_data(open_page: Opener, proxy_stack: ProxyStack) -> None:
    """The trend page of a point draws the historian's samples: the historian has some (asked
    directly first), the page says how many it got from the historian, and the canvas plots
    points (its ``data-points``)."""
    topic = "data.station.pump_speed"
    client = proxy_stack.client("user.vera")

    def stored() -> int:
        now = time.time()
        params = {"points": "station.pump_speed", "since": now - 600, "until": now}
        answer = client.post("/api/v1/services/org.plantd.Historian/query", json=params)
        assert answer.status_code == 200, answer.text
        return len(answer.json()["result"]["rows"])

    try:
        until(stored, f"the historian holds samples of {topic}", 30.0)
    finally:
        client.close()

    screen = open_page(DESKTOP)
    page = screen.page
    screen.log_in("user.vera", f"/trend?topic={topic}")
    expect(page.get_by_test_id("trend-topic")).to_have_text(topic)
    status = page.get_by_test_id("trend-status")
    expect(status).to_have_text(re.compile(r"^[1-9]\d* samples from the historian"))
    canvas = page.get_by_test_id("trend-canvas")
    expect(canvas).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    screen.shoot("trend")

    page.set_viewport_size(PHONE)
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None
    assert box["width"] <= PHONE["width"], box
    # Redrawn for the narrower screen (not the wide drawing shrunk): pixels match its size.
    page.wait_for_function(
        """() => {
            const canvas = document.querySelector('[data-testid="trend-canvas"]');
            return canvas.width === Math.round(canvas.clientWidth * (devicePixelRatio || 1));
        }""",
        timeout=10_000,
    )
    expect(canvas).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    screen.shoot("trend")
