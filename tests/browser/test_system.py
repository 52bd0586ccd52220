"""The System page in a real browser (chromium) against the real proxy of ``proxy_stack``: it
renders for an admin and a viewer without a JavaScript error, shows the slots and the last
update as the root side wrote them, and an admin's upload lands complete as incoming.raucb
(no root service runs here to take it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from plantd.system._incoming import INCOMING, INCOMING_INFO, SLOTS_FILE, STATUS_FILE, write_json
from tests.browser.conftest import DESKTOP, PHONE, Opener
from tests.integration.proxy.conftest import ProxyStack

BUNDLE = b"hsqs-a-bundle-" * 5000


@pytest.fixture
def update_dir(proxy_stack: ProxyStack) -> Iterator[Path]:
    directory = Path(proxy_stack.stack.settings["paths"]["data"]) / "update"
    directory.mkdir(parents=True, exist_ok=True)
    write_json(
        directory / SLOTS_FILE,
        {"booted": "a", "primary": "a", "slots": {"a": "good", "b": "bad"}},
    )
    write_json(
        directory / STATUS_FILE,
        {"state": "failed", "bundle": "old.raucb", "message": "signature verification failed"},
    )
    yield directory
    for path in directory.iterdir():
        path.unlink()


def test_an_admin_sees_the_slots_and_uploads_a_bundle(
    open_page: Opener, update_dir: Path, tmp_path: Path
) -> None:
    screen = open_page(DESKTOP)
    screen.log_in("user.ada", "/system")
    page = screen.page
    expect(page.locator('[data-testid="slot-row"][data-slot="b"]')).to_have_attribute(
        "data-state", "bad"
    )
    expect(page.get_by_test_id("slots-summary")).to_contain_text("Booted: slot a")
    expect(page.get_by_test_id("update-status")).to_have_attribute("data-state", "failed")
    expect(page.get_by_test_id("update-message")).to_contain_text("signature verification")
    bundle = tmp_path / "plantd-9.9.raucb"
    bundle.write_bytes(BUNDLE)
    page.get_by_test_id("update-file").set_input_files(str(bundle))
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("update-send").click()
    expect(page.get_by_test_id("update-result")).to_contain_text("Sent: plantd-9.9.raucb")
    assert (update_dir / INCOMING).read_bytes() == BUNDLE
    assert '"by": "user.ada"' in (update_dir / INCOMING_INFO).read_text()
    screen.shoot("system")


def test_a_viewer_sees_the_page_without_the_upload(open_page: Opener, update_dir: Path) -> None:
    screen = open_page(PHONE)
    screen.log_in("user.vera", "/system")
    page = screen.page
    expect(page.get_by_test_id("update-not-permitted")).to_be_visible()
    expect(page.get_by_test_id("update-form")).to_have_count(0)
    expect(page.locator('[data-testid="slot-row"]')).to_have_count(2)
