"""The scanner page in a real browser: Debian's Chromium, driven by Playwright, on a phone screen,
with a fake camera that films a QR code.

The QR is the one a customer holds: an Issued order's real manifest (JSON) is fetched and its
first ticket's barcode payload is rendered into the frames of a YUV4MPEG2 file, which Chromium
plays as its camera (--use-file-for-fake-video-capture). The page, logged in as a device, decodes
it in the browser (jsQR), posts it, shows "Accepted"; once that answer clears, the same QR (still
in front of the camera) is posted again and answered "Already redeemed". Manual entry is tested
without a camera. Chromium must be installed (`apt-get install -y chromium`): without it these
tests fail, they do not skip. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from catalog.selectors import venue_today
from channel_manager.orders.models import OrderStatus
from tests.payloads import line, order_body
from tests.test_admin_browser import off_the_browser_thread
from tests.test_gate import place
from wallets.gate.devices import create_gate_device
from wallets.models import GateScan

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The answers stay a few seconds (scanner.js); Playwright waits up to this long for each.
ANSWER_TIMEOUT_MS = 30_000


def write_y4m(path: Path, text: str, *, width: int = 640, height: int = 480, frames: int = 5) -> None:
    """A still video of the QR code of `text`: YUV4MPEG2, 4:2:0 (I420) frames, grey only (Y is
    the picture, U and V are neutral). The QR fills most of the frame's height, with its quiet zone."""
    import segno
    from PIL import Image

    qr = segno.make_qr(text, error="m")
    modules = qr.symbol_size(scale=1, border=4)[0]
    png = io.BytesIO()
    qr.save(png, kind="png", scale=max(1, int(height * 0.9) // modules), border=4)
    symbol = Image.open(png).convert("L")
    picture = Image.new("L", (width, height), 255)
    picture.paste(symbol, ((width - symbol.width) // 2, (height - symbol.height) // 2))
    luma = picture.tobytes()
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)


@contextmanager
def phone(*extra_args: str):
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], headless=True
        )
        try:
            yield browser.new_context(**PHONE).new_page()
        finally:
            browser.close()


def issued_ticket_payload(api: APIClient) -> str:
    """The QR payload of the first ticket of an Issued order for today, from its real manifest."""
    order = place(api, order_body(items=[line("DAY-ADULT", 1, visitDate=venue_today().isoformat())]))
    assert order.status == OrderStatus.ISSUED
    wallet = api.get(f"/channelManager/{order.order_id}").json()["items"][0]["wallets"][0]
    manifest = APIClient().get(urlsplit(wallet["manifestUrl"]).path, {"format": "json"})
    assert manifest.status_code == 200
    tickets = [asset for asset in manifest.json()["assets"] if asset["assetType"] == "ticket"]
    return tickets[0]["barcode"]["payload"]


def log_in_as_device(page, base: str, token: str) -> None:
    page.goto(f"{base}/gate/scan/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#scanner")


def watch_requests(page, base: str) -> tuple[list[str], list[str]]:
    """Every URL the page requests, and the scans it posts."""
    requested: list[str] = []
    scans: list[str] = []

    def seen(request) -> None:
        requested.append(request.url)
        if request.method == "POST" and request.url.endswith("/gate/scan/check"):
            scans.append(request.post_data or "")

    page.on("request", seen)
    return requested, scans


def fits(page, selector: str) -> bool:
    """The words stay inside the screen: nothing cut off at the sides."""
    return page.eval_on_selector(selector, "e => e.scrollWidth <= e.clientWidth && "
                                           "e.getBoundingClientRect().right <= window.innerWidth")


def one_line(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "e => { const r = document.createRange(); r.selectNodeContents(e); "
                                           "return r.getClientRects().length === 1; }")


def scans_logged() -> list[tuple[str, str | None]]:
    return list(GateScan.objects.order_by("id").values_list("result", "reason"))


def test_the_camera_scans_a_manifests_qr_accepted_then_already_redeemed(client, catalog, live_server, tmp_path):
    payload = issued_ticket_payload(client)
    _, token = create_gate_device(name="North entrance 1")
    video = tmp_path / "qr.y4m"
    write_y4m(video, payload)
    base = live_server.url
    ARTIFACTS.mkdir(exist_ok=True)

    with phone("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
               f"--use-file-for-fake-video-capture={video}") as page:
        requested, scans = watch_requests(page, base)
        log_in_as_device(page, base, token)

        page.wait_for_selector("#answer.accepted", timeout=ANSWER_TIMEOUT_MS)
        assert page.inner_text("#verdict").strip().lower() == "accepted"
        assert fits(page, "#verdict") and one_line(page, "#verdict")
        page.screenshot(path=str(ARTIFACTS / "gate-accepted.png"))
        # One post while the answer is on screen, though the camera still shows the code.
        assert len(scans) == 1 and payload in scans[0]

        page.wait_for_selector("#answer.rejected", timeout=ANSWER_TIMEOUT_MS)
        assert page.inner_text("#verdict").strip().lower() == "rejected"
        assert page.inner_text("#reason").strip().lower() == "already redeemed"
        assert "by this scanner" in page.inner_text("#detail")
        assert fits(page, "#verdict") and one_line(page, "#verdict") and fits(page, "#reason")
        page.screenshot(path=str(ARTIFACTS / "gate-already-redeemed.png"))
        assert len(scans) == 2 and scans[1] == scans[0]
        # The answer fills the screen.
        box = page.locator("#answer").bounding_box()
        assert box["width"] >= 390 and box["height"] >= 844
        assert all(url.startswith(base) for url in requested), "the page must load nothing from elsewhere"

    assert off_the_browser_thread(scans_logged)[:2] == [("accepted", None), ("rejected", "already_redeemed")]


def test_a_code_typed_by_hand_is_accepted_then_already_redeemed(client, catalog, live_server):
    payload = issued_ticket_payload(client)
    _, token = create_gate_device(name="North entrance 1")
    base = live_server.url

    with phone() as page:  # no camera at all: manual entry still works
        requested, scans = watch_requests(page, base)
        log_in_as_device(page, base, token)
        page.fill("#code", payload.lower() if len(payload) <= 32 else payload)
        page.click("#manual button[type=submit]")
        page.wait_for_selector("#answer.accepted", timeout=ANSWER_TIMEOUT_MS)
        page.click("#answer")  # a tap clears it
        page.wait_for_selector("#answer", state="hidden")
        page.fill("#code", payload)
        page.press("#code", "Enter")
        page.wait_for_selector("#answer.rejected", timeout=ANSWER_TIMEOUT_MS)
        assert page.inner_text("#reason").strip() == "Already redeemed"
        assert len(scans) == 2
        assert all(url.startswith(base) for url in requested)

    assert off_the_browser_thread(scans_logged) == [("accepted", None), ("rejected", "already_redeemed")]
