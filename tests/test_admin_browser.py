"""The staff admin in a real browser (Debian's Chromium driven by Playwright, against the live
test server): a support member finds an order in Error by its partner reference, reads why,
corrects it and re-issues it, and sees it Issued; a finance member downloads the CSV export.

Chromium must be installed (`apt-get install -y chromium`): without it this test fails, it does
not skip. Playwright never downloads a browser here; it drives /usr/bin/chromium. Screenshots go
to tests/artifacts/ for people to look at.
"""

from __future__ import annotations

import csv
import importlib
import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connections

from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus, OrderStatusChange
from tests.factories import STAFF_PASSWORD, staff_user, submit_order
from tests.payloads import line, order_body

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@contextmanager
def chromium():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def off_the_browser_thread(fn, **kwargs):
    """Playwright's sync API runs an event loop in the test's thread, where Django refuses
    database queries: run them in another thread (the database is shared: transactional test)."""

    def run():
        try:
            return fn(**kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def log_in(page, base: str, username: str, next_path: str) -> None:
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


@pytest.fixture
def staff(db):
    # A transactional test before this one may have flushed the groups the migration made.
    importlib.import_module("channel_manager.migrations.0003_staff_groups").create_staff_groups(apps)
    return staff_user("sam", "Support"), staff_user("fran", "Finance")


def test_support_fixes_an_error_order_and_finance_exports_it(live_server, catalog, partner, staff):
    ARTIFACTS.mkdir(exist_ok=True)
    reference = "ACME-BROWSER-1"
    order = submit_order(partner, order_body(
        sellToOrderReference=reference,
        items=[line("DAY-ADULT", 1), line("SHOW-EVENING", 2, visitTime="18:00")],
    ))
    assert order.status == OrderStatus.ERROR
    base = live_server.url
    orders_path = "/admin/channel_manager/order/"

    with chromium() as browser:
        # ---- support: find, read, correct, re-issue ------------------------------------------
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        log_in(page, base, "sam", orders_path)
        page.fill("#searchbar", reference)
        page.press("#searchbar", "Enter")
        page.wait_for_url("**q=ACME-BROWSER-1*")
        results = page.locator("#result_list tbody tr")
        assert results.count() == 1
        results.first.locator(f"a:has-text('{order.buy_from_order_reference}')").click()
        page.wait_for_selector("#cm-status-message")
        message = page.inner_text("#cm-status-message")
        assert "items[1]: SHOW-EVENING has no 18:00 slot" in message
        page.screenshot(path=str(ARTIFACTS / "admin-order-error.png"), full_page=True)

        page.click("a.cm-tool:has-text('Re-issue')")
        page.wait_for_selector("#id_items")
        items = page.input_value("#id_items")
        assert '"visitTime": "18:00"' in items
        page.fill("#id_items", items.replace('"visitTime": "18:00"', '"visitTime": "19:30"'))
        page.click("input[name=_confirm]")
        page.wait_for_selector("ul.messagelist li.success")
        assert "re-issued" in page.inner_text("ul.messagelist")
        assert page.inner_text(".field-status_badge .readonly").strip() in {"Submitted", "Scheduled"}

        # The worker's part, as the qcluster would do it after the commit.
        assert off_the_browser_thread(issue_order, order_pk=order.pk) == OrderStatus.ISSUED
        page.reload()
        assert page.inner_text(".field-status_badge .readonly").strip() == "Issued"
        assert page.locator("#cm-status-message").count() == 0
        assert "staff:sam" in page.inner_text("#cm-history")
        page.screenshot(path=str(ARTIFACTS / "admin-order-issued.png"), full_page=True)

        # ---- finance: export the partner's orders as CSV ---------------------------------------
        page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
        log_in(page, base, "fran", orders_path)
        assert page.locator("a.cm-tool, #cm-export-link").count() == 1
        page.click("#cm-export-link")
        page.wait_for_selector("#cm-export-form")
        page.select_option("#id_partner", label=str(partner))
        page.click("#cm-summary-button")
        page.wait_for_selector("#cm-summary")
        total = page.locator("tr.cm-summary-total")
        assert total.locator("[data-col=orders]").inner_text() == "1"
        assert total.locator("[data-col=tickets]").inner_text() == "3"
        assert total.locator("[data-col=amount]").inner_text() == "89.50"
        page.screenshot(path=str(ARTIFACTS / "admin-export.png"), full_page=True)
        with page.expect_download() as download_info:
            page.click("#cm-csv-button")
        download = download_info.value
        assert download.suggested_filename.endswith(".csv")
        text = Path(download.path()).read_bytes().decode("utf-8-sig")

    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["sellToOrderReference"], r["status"], r["lineNumber"], r["itemId"], r["quantity"], r["unitPrice"],
             r["lineTotal"]) for r in rows] == [
        (reference, "Issued", "1", "DAY-ADULT", "1", "49.50", "49.50"),
        (reference, "Issued", "2", "SHOW-EVENING", "2", "20.00", "40.00"),
    ]
    assert sum(Decimal(r["lineTotal"]) for r in rows) == Decimal(rows[0]["orderTotal"]) == Decimal("89.50")
    order = Order.objects.get(pk=order.pk)
    assert order.status == OrderStatus.ISSUED
    assert OrderStatusChange.objects.filter(order=order, actor="staff:sam", to_status="Submitted").exists()
