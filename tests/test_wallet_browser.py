"""The wallet page in a real browser: Debian's Chromium, driven by Playwright, on a phone screen.

Every QR code on the page is photographed and decoded (zxing-cpp) back to its signed payload,
which names its asset number, as a gate scanner would. The full page is saved to
tests/artifacts/wallet.png for people to look at.
Chromium must be installed (`apt-get install -y chromium`): without it this test fails, it
does not skip. Playwright never downloads a browser here; it drives /usr/bin/chromium.
"""

from __future__ import annotations

import base64
import io
import json
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from tests.payloads import line, order_body, visit_date
from wallets.models import Asset

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@contextmanager
def phone_page():
    """A phone-sized page of Chromium with JavaScript off: the wallet page must work without it.

    Playwright's sync API runs an event loop in this thread, where Django then refuses database
    queries: read everything needed from the database before opening the page.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False, **PHONE)
            yield context.new_page()
        finally:
            browser.close()


def settled_wallet_path(client, *, payment_reference: str | None) -> tuple[str, Order]:
    day = visit_date()
    body = order_body(
        paymentReference=payment_reference,
        items=[line("PARK-AND-SHOW", 1, visitDate=day, wallet={
            "externalReferenceNumbers": ["ACME-PKG-1"],
            "componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]})],
    )
    response = client.post("/channelManager", body, format="json")
    assert response.status_code == 202, response.content
    order = Order.objects.get(order_id=response.json()["orderId"])
    issue_order(order_pk=order.pk)
    order.refresh_from_db()
    wallet = client.get(f"/channelManager/{order.order_id}").json()["items"][0]["wallets"][0]
    return urlsplit(wallet["manifestUrl"]).path, order


def decode_qr(png: bytes) -> list[str]:
    import zxingcpp
    from PIL import Image

    # QR codes only: a 1D reader can see a phantom barcode in a QR code's modules.
    image = Image.open(io.BytesIO(png))
    return [result.text for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def test_issued_package_page_shows_a_scannable_qr_per_asset_on_a_phone(client, catalog, live_server):
    path, order = settled_wallet_path(client, payment_reference="PAY-1")
    assert order.status == OrderStatus.ISSUED
    numbers = list(
        Asset.objects.filter(wallet__order_link__order=order)
        .order_by("position")
        .values_list("asset_number", flat=True)
    )
    assert len(numbers) == 3

    with phone_page() as phone:
        check_issued_page(phone, live_server.url + path, numbers)


def check_issued_page(phone, url: str, numbers: list[str]) -> None:
    response = phone.goto(url)
    assert response.status == 200
    assert response.headers["cache-control"] == "private, no-store"
    cards = phone.locator("li.card")
    assert cards.count() == 3
    decoded = []
    for index in range(cards.count()):
        card = cards.nth(index)
        qr = card.locator("svg[role=img]")
        assert qr.count() == 1
        assert qr.get_attribute("aria-label").endswith(numbers[index])
        box = qr.bounding_box()
        assert box["width"] >= 200, "a QR code should fill most of a phone's width"
        texts = decode_qr(qr.screenshot())
        assert len(texts) == 1, f"card {index}: decoded {texts}"
        claims = json.loads(base64.urlsafe_b64decode(texts[0].split(".")[1] + "=="))
        assert claims["a"] == card.locator(".number").inner_text(), f"card {index}: decoded {texts}"
        decoded.append(claims["a"])
    assert decoded == numbers

    assert phone.locator("li.card.coupon").count() == 1
    assert phone.locator("h1").count() == 1
    assert "Harbour Park" in phone.locator("header").text_content()
    # Nothing sticks out sideways on a 390 px screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "wallet.png"), full_page=True)


def test_draft_page_shows_no_qr_on_a_phone(client, catalog, live_server):
    path, order = settled_wallet_path(client, payment_reference=None)
    assert order.status == OrderStatus.DRAFT
    with phone_page() as phone:
        check_draft_page(phone, live_server.url + path)


def check_draft_page(phone, url: str) -> None:
    response = phone.goto(url)
    assert response.status == 200
    assert phone.locator("svg").count() == 0
    assert "Not valid until the order is confirmed" in phone.locator("main").inner_text()
    assert decode_qr(phone.screenshot(full_page=True)) == []
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "wallet-draft.png"), full_page=True)
