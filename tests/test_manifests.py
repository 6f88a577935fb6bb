"""Wallet manifests: the JSON, the customer page and the Apple Wallet pass behind a manifestUrl.

Orders are made through the partner API and settled by the issuance service, as in production.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import re
import shutil
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import ItemType
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from tests.factories import ItemFactory, PackageComponentFactory, PackageCouponFactory
from tests.payloads import line, order_body, visit_date
from tests.test_api_auth import assert_problem
from wallets import passkit
from wallets.gate import signing
from wallets.models import Asset

pytestmark = pytest.mark.django_db

PRIVATE_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
JSON = {"HTTP_ACCEPT": "application/json"}
BROWSER = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
QR_SVG = re.compile(r'<svg role="img" aria-label="QR code of the (ticket|coupon) [^"]*, number ([A-Z0-9]+)"')


# ---- helpers ----------------------------------------------------------------------------------


def create(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def settle(order_id: str) -> str:
    issue_order(order_pk=Order.objects.get(order_id=order_id).pk)
    return Order.objects.get(order_id=order_id).status


def issued(client, **overrides) -> dict:
    created = create(client, **overrides)
    assert settle(created["orderId"]) == OrderStatus.ISSUED
    return client.get(f"/channelManager/{created['orderId']}").json()


def draft(client, **overrides) -> dict:
    created = create(client, paymentReference=None, **overrides)
    assert settle(created["orderId"]) == OrderStatus.DRAFT
    return client.get(f"/channelManager/{created['orderId']}").json()


def wallets(order: dict) -> list[dict]:
    return [wallet for item in order["items"] for wallet in item["wallets"]]


def path_of(wallet: dict) -> str:
    return urlsplit(wallet["manifestUrl"]).path


def manifest(anon_client, wallet: dict) -> dict:
    response = anon_client.get(path_of(wallet), **JSON)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def page(anon_client, wallet: dict):
    response = anon_client.get(path_of(wallet), **BROWSER)
    assert response["Content-Type"].startswith("text/html")
    return response


def assert_private(response) -> None:
    for name, value in PRIVATE_HEADERS.items():
        assert response[name] == value, name


def asset_numbers(wallet: dict) -> list[str]:
    return [asset["assetNumber"] for asset in wallet["assets"]]


def signed(asset_number: str) -> str:
    """The asset's QR payload: its JWS (Ed25519 signatures are deterministic)."""
    return signing.signed_payload(Asset.objects.get(asset_number=asset_number))


# ---- JSON: every kind of asset ----------------------------------------------------------------


def test_ticket_wallet_json_has_references_holder_venue_visit_and_a_qr_per_asset(client, anon_client, catalog):
    order = issued(client, items=[line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["ACME-T-1"]})])
    wallet = wallets(order)[0]
    body = manifest(anon_client, wallet)

    assert list(body["wallet"]) == ["reference", "externalReferenceNumber", "walletReferenceNumber"]
    assert body["wallet"] == {
        "reference": "ACME-T-1", "externalReferenceNumber": "ACME-T-1", "walletReferenceNumber": "ACME-T-1",
    }
    assert body["order"] == {
        "sellToOrderReference": order["sellToOrderReference"],
        "buyFromOrderReference": order["buyFromOrderReference"],
        "partnerId": "acme-travel",
    }
    assert body["holderName"] == "Ada Lovelace"
    assert body["venue"] == {"name": "Harbour Park", "timeZone": "Europe/Amsterdam"}
    assert body["visitDate"] == order["items"][0]["visitDate"] and body["visitTime"] is None
    assert body["validity"] == "valid" and body["validityText"] == "Valid"
    [asset] = body["assets"]
    number = wallet["assets"][0]["assetNumber"]
    assert asset == {
        "assetType": "ticket", "assetNumber": number, "itemId": "DAY-ADULT", "name": "Day ticket, adult",
        "visitDate": body["visitDate"], "visitTime": None, "admits": 1,
        "validity": {"status": "valid", "validFrom": body["visitDate"], "validUntil": body["visitDate"]},
        "barcode": {"format": "QR", "payload": signed(number)},
    }


def test_wallet_without_external_reference_shows_the_system_reference(client, anon_client, catalog):
    wallet = wallets(issued(client))[0]
    body = manifest(anon_client, wallet)
    assert body["wallet"]["externalReferenceNumber"] is None
    assert body["wallet"]["reference"] == body["wallet"]["walletReferenceNumber"] == wallet["walletReferenceNumber"]


def test_group_ticket_admits_the_group(client, anon_client, catalog):
    wallet = wallets(issued(client, items=[line("FAMILY-GROUP", 4)]))[0]
    [asset] = manifest(anon_client, wallet)["assets"]
    assert asset["assetType"] == "ticket" and asset["itemId"] == "FAMILY-GROUP"
    assert asset["admits"] == 4
    assert asset["barcode"] == {"format": "QR", "payload": signed(wallet["assets"][0]["assetNumber"])}


def test_package_lists_a_ticket_per_component_and_its_coupon(client, anon_client, catalog):
    day = visit_date()
    order = issued(client, items=[line("PARK-AND-SHOW", 1, visitDate=day, wallet={"componentSchedule": [
        {"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]})])
    wallet = wallets(order)[0]
    body = manifest(anon_client, wallet)
    park, show, coupon = body["assets"]
    assert (park["assetType"], park["itemId"], park["visitTime"], park["admits"]) == ("ticket", "DAY-ADULT", None, 1)
    assert (show["assetType"], show["itemId"], show["visitTime"], show["admits"]) == (
        "ticket", "SHOW-EVENING", "19:30", 1)
    assert coupon["assetType"] == "coupon" and coupon["itemId"] == "PARK-AND-SHOW"
    assert coupon["description"] == "10% off food and drinks" and coupon["validUntil"] == day
    assert "admits" not in coupon
    assert coupon["validity"] == {"status": "valid", "validFrom": day, "validUntil": day}
    # The visit is the first ticket's: the park day, no time (the show keeps its own 19:30).
    assert (body["visitDate"], body["visitTime"]) == (day, None)
    assert [signing.verify(a["barcode"]["payload"])["a"] for a in body["assets"]] == asset_numbers(wallet)
    assert len(set(asset_numbers(wallet))) == 3


def test_format_json_query_parameter_answers_json_to_a_browser(client, anon_client, catalog):
    wallet = wallets(issued(client))[0]
    response = anon_client.get(path_of(wallet) + "?format=json", **BROWSER)
    assert response["Content-Type"] == "application/json"
    assert response.json()["assets"][0]["assetNumber"] == wallet["assets"][0]["assetNumber"]


# ---- Draft and Issued -------------------------------------------------------------------------


def test_draft_wallet_is_not_valid_and_carries_no_barcode_or_number(client, anon_client, catalog):
    order = draft(client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")])
    wallet = wallets(order)[0]
    response = anon_client.get(path_of(wallet), **JSON)
    body = response.json()
    assert body["validity"] == "not_valid_until_confirmed"
    assert body["validityText"] == "Not valid until the order is confirmed"
    assert [a["assetType"] for a in body["assets"]] == ["ticket", "ticket", "coupon"]
    assert [a["name"] for a in body["assets"]] == ["Day ticket, adult", "Evening show", "Park and show"]
    assert all(a["barcode"] is None and a["assetNumber"] is None for a in body["assets"])
    assert all(a["validity"]["status"] == "not_valid_until_confirmed" for a in body["assets"])
    numbers = Asset.objects.filter(wallet__order_link__order__order_id=order["orderId"]).values_list(
        "asset_number", flat=True
    )
    assert len(numbers) == 3
    assert not any(number.encode() in response.content for number in numbers)


def test_confirming_a_draft_makes_the_same_url_valid_with_barcodes(client, anon_client, catalog):
    order = draft(client)
    wallet = wallets(order)[0]
    assert manifest(anon_client, wallet)["validity"] == "not_valid_until_confirmed"
    confirmed = client.post(f"/channelManager/{order['orderId']}/confirm", {"paymentReference": "P-9"}, format="json")
    assert confirmed.status_code == 200
    body = manifest(anon_client, wallet)
    assert body["validity"] == "valid"
    assert [signing.verify(a["barcode"]["payload"])["a"] for a in body["assets"]] == asset_numbers(wallet)


# ---- destroyed and unknown wallets ------------------------------------------------------------


def test_cancelling_an_issued_order_makes_its_manifests_410(client, anon_client, catalog):
    order = issued(client, items=[line("DAY-ADULT", 2)])
    paths = [path_of(w) for w in wallets(order)]
    assert client.delete(f"/channelManager/{order['orderId']}").status_code == 200
    for path in paths:
        problem = assert_problem(anon_client.get(path, **JSON), 410, "wallet_gone")
        assert "cancelled or replaced" in problem["detail"]
        html = anon_client.get(path, **BROWSER)
        assert html.status_code == 410 and html["Content-Type"].startswith("text/html")
        assert "no longer valid" in html.content.decode()
        assert_private(html)


def test_replacing_a_draft_makes_the_old_manifests_410_and_the_new_ones_work(client, anon_client, catalog):
    order = draft(client, items=[line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["R-1"]})])
    old = path_of(wallets(order)[0])
    body = order_body(sellToOrderReference=order["sellToOrderReference"],
                      items=[line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["R-1"]})])
    assert client.put(f"/channelManager/{order['orderId']}", body, format="json").status_code == 202
    assert_problem(anon_client.get(old, **JSON), 410, "wallet_gone")
    assert settle(order["orderId"]) == OrderStatus.ISSUED
    new = wallets(client.get(f"/channelManager/{order['orderId']}").json())[0]
    assert path_of(new) != old
    assert manifest(anon_client, new)["wallet"]["reference"] == "R-1"
    assert anon_client.get(old, **JSON).status_code == 410


@pytest.mark.parametrize(
    "token", ["x" * 32, "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4", "short", "a" * 65, "bad token!!!!!!!!!!"]
)
def test_unknown_token_is_404_json_and_html(anon_client, catalog, token):
    path = f"/wallets/{token}"
    response = anon_client.get(path, **JSON)
    assert_problem(response, 404, "not_found")
    assert_private(response)
    html = anon_client.get(path, **BROWSER)
    assert html.status_code == 404 and html["Content-Type"].startswith("text/html")
    assert "cannot find" in html.content.decode()
    assert_private(html)


def test_token_is_compared_in_constant_time_after_lookup(client, anon_client, catalog, monkeypatch):
    from wallets import selectors

    calls = []
    real = selectors.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(selectors.hmac, "compare_digest", spy)
    wallet = wallets(issued(client))[0]
    token = path_of(wallet).rsplit("/", 1)[1]
    manifest(anon_client, wallet)
    assert calls == [(token.encode(), token.encode())]


def test_only_get_is_allowed(client, anon_client, catalog):
    wallet = wallets(issued(client))[0]
    response = anon_client.post(path_of(wallet), {}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert_private(response)


# ---- headers and query count ------------------------------------------------------------------


def test_every_manifest_response_is_private_uncached_and_unindexed(client, anon_client, catalog, settings, tmp_path):
    configure_passkit(settings, tmp_path)
    live = wallets(issued(client))[0]
    cancelled = issued(client)
    gone = wallets(cancelled)[0]
    client.delete(f"/channelManager/{cancelled['orderId']}")
    responses = {
        "json": anon_client.get(path_of(live), **JSON),
        "html": anon_client.get(path_of(live), **BROWSER),
        "no accept header": anon_client.get(path_of(live)),
        "pkpass": anon_client.get(path_of(live) + "/pass.pkpass"),
        "404": anon_client.get("/wallets/" + "A" * 32, **JSON),
        "404 html": anon_client.get("/wallets/" + "A" * 32, **BROWSER),
        "410": anon_client.get(path_of(gone), **JSON),
        "410 html": anon_client.get(path_of(gone), **BROWSER),
        "410 pkpass": anon_client.get(path_of(gone) + "/pass.pkpass"),
        "404 pkpass": anon_client.get("/wallets/" + "A" * 32 + "/pass.pkpass"),
    }
    assert {k: r.status_code for k, r in responses.items()} == {
        "json": 200, "html": 200, "no accept header": 200, "pkpass": 200, "404": 404, "404 html": 404,
        "410": 410, "410 html": 410, "410 pkpass": 410, "404 pkpass": 404,
    }
    for response in responses.values():
        assert_private(response)
    assert responses["no accept header"]["Content-Type"].startswith("text/html")
    assert "script-src" not in responses["html"]["Content-Security-Policy"]
    assert "default-src 'none'" in responses["html"]["Content-Security-Policy"]


def big_package(components: int, coupons: int):
    package = ItemFactory(item_id="BIG-PACK", name="Big pack", item_type=ItemType.PACKAGE, price=Decimal("99.00"))
    for n in range(components):
        PackageComponentFactory(package=package, component=ItemFactory(item_id=f"PART-{n}", name=f"Part {n}"),
                                position=n)
    for n in range(coupons):
        PackageCouponFactory(package=package, code=f"C{n}", description=f"Coupon {n}", valid_days=2)
    return package


def count_queries(anon_client, path: str, headers: dict) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert anon_client.get(path, **headers).status_code == 200
    return len(queries)


def test_a_manifest_takes_a_fixed_number_of_queries_whatever_its_assets(client, anon_client, catalog):
    big_package(components=6, coupons=4)
    small = wallets(issued(client, items=[line("DAY-ADULT", 1)]))[0]
    big = wallets(issued(client, items=[line("BIG-PACK", 1)]))[0]
    assert len(big["assets"]) == 10
    for headers in (JSON, BROWSER):
        anon_client.get(path_of(small), **headers)  # the venue is cached per process
        assert count_queries(anon_client, path_of(small), headers) == 2
        assert count_queries(anon_client, path_of(big), headers) == 2


# ---- the page ---------------------------------------------------------------------------------


def test_issued_page_has_one_labelled_qr_svg_per_asset_and_coupons_look_different(client, anon_client, catalog):
    order = issued(client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")])
    wallet = wallets(order)[0]
    response = page(anon_client, wallet)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="en-gb"' in html  # dates in language en, country GB
    qr_codes = QR_SVG.findall(html)
    assert [number for _, number in qr_codes] == asset_numbers(wallet)
    assert [kind for kind, _ in qr_codes] == ["ticket", "ticket", "coupon"]
    assert html.count("<svg ") == 3
    assert html.count('class="card ticket"') == 2 and html.count('class="card coupon"') == 1
    assert ">Coupon<" in html and "10% off food and drinks" in html
    assert "Harbour Park" in html and "Ada Lovelace" in html
    assert "<h1>" in html and html.count("<h2") >= 3 and html.count("<h3") == 3
    assert "<script" not in html
    assert "Not valid" not in html
    assert order["sellToOrderReference"] in html and order["buyFromOrderReference"] in html


def test_draft_page_says_not_valid_and_shows_no_code(client, anon_client, catalog):
    order = draft(client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")])
    response = page(anon_client, wallets(order)[0])
    html = response.content.decode()
    assert response.status_code == 200
    assert "Not valid until the order is confirmed" in html
    assert "<svg" not in html
    assert "Evening show" in html and "Day ticket, adult" in html and "10% off food and drinks" in html
    numbers = Asset.objects.filter(wallet__order_link__order__order_id=order["orderId"]).values_list(
        "asset_number", flat=True
    )
    assert not any(number in html for number in numbers)
    assert "pass.pkpass" not in html


GERMAN_WEEKDAYS = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
ENGLISH_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def test_page_dates_are_in_the_customers_language(client, anon_client, catalog):
    day = visit_date(40)
    customer = {"firstName": "Grete", "lastName": "Müller", "language": "de", "country": "DE"}
    wallet = wallets(issued(client, customer=customer, items=[line("SHOW-EVENING", 1, visitDate=day,
                                                                    visitTime="19:30")]))[0]
    response = page(anon_client, wallet)
    html = response.content.decode()
    assert GERMAN_WEEKDAYS[dt.date.fromisoformat(day).weekday()] in html
    assert 'lang="de"' in html
    assert "19:30" in html


def test_page_falls_back_to_english_for_an_unknown_language(client, anon_client, catalog):
    day = visit_date(41)
    wallet = wallets(issued(client, customer={"firstName": "X", "language": "zz"},
                            items=[line("DAY-ADULT", 1, visitDate=day)]))[0]
    html = page(anon_client, wallet).content.decode()
    assert 'lang="en"' in html and 'lang="zz"' not in html
    assert ENGLISH_WEEKDAYS[dt.date.fromisoformat(day).weekday()] in html


def test_page_does_not_link_a_pass_when_passes_are_not_configured(client, anon_client, catalog, settings):
    for name in passkit.REQUIRED_SETTINGS:
        setattr(settings, name, "")
    wallet = wallets(issued(client))[0]
    assert "pass.pkpass" not in page(anon_client, wallet).content.decode()
    assert_problem(anon_client.get(path_of(wallet) + "/pass.pkpass"), 404, "not_found")


# ---- Apple Wallet -----------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


@functools.cache
def pass_certificates() -> dict:
    """A stand-in for Apple's chain: a root, a WWDR-like intermediate, and a Pass Type ID cert."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    root = _certificate("Test Root CA", keys[0], "Test Root CA", keys[0], ca=True)
    wwdr = _certificate("Test WWDR", keys[1], "Test Root CA", keys[0], ca=True)
    leaf = _certificate("Pass Type ID: pass.example.test", keys[2], "Test WWDR", keys[1], ca=False)
    return {"root": root, "wwdr": wwdr, "leaf": leaf, "leaf_key": keys[2]}


def configure_passkit(settings, tmp_path: Path) -> dict:
    """Point the PASSKIT_* settings at the test chain, with the key encrypted by a password."""
    pki = pass_certificates()
    pem = serialization.Encoding.PEM
    (tmp_path / "root.pem").write_bytes(pki["root"].public_bytes(pem))
    (tmp_path / "wwdr.pem").write_bytes(pki["wwdr"].public_bytes(pem))
    (tmp_path / "pass.pem").write_bytes(pki["leaf"].public_bytes(pem))
    (tmp_path / "pass.key").write_bytes(pki["leaf_key"].private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3cret")))
    settings.PASSKIT_CERT_FILE = str(tmp_path / "pass.pem")
    settings.PASSKIT_KEY_FILE = str(tmp_path / "pass.key")
    settings.PASSKIT_KEY_PASSWORD = "s3cret"
    settings.PASSKIT_WWDR_CERT_FILE = str(tmp_path / "wwdr.pem")
    settings.PASSKIT_PASS_TYPE_ID = "pass.example.test"
    settings.PASSKIT_TEAM_ID = "TEAM123456"
    return pki


def openssl_verify(signature: bytes, content: bytes, root_pem: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to verify pass signatures (apt-get install -y openssl)"
    (tmp_path / "signature.der").write_bytes(signature)
    (tmp_path / "content").write_bytes(content)
    return subprocess.run(
        [openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "signature.der"),
         "-content", str(tmp_path / "content"), "-CAfile", str(root_pem), "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )


def test_pkpass_is_a_signed_pass_of_the_first_ticket(client, anon_client, catalog, settings, tmp_path):
    pki = configure_passkit(settings, tmp_path)
    wallet = wallets(issued(client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")]))[0]
    assert 'href="' + path_of(wallet) + '/pass.pkpass"' in page(anon_client, wallet).content.decode()

    response = anon_client.get(path_of(wallet) + "/pass.pkpass")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.apple.pkpass"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    files = {name: archive.read(name) for name in archive.namelist()}
    assert {"pass.json", "manifest.json", "signature", "icon.png", "icon@2x.png"} <= set(files)

    # manifest.json: the SHA-1 of every file but itself and the signature.
    digests = json.loads(files["manifest.json"])
    assert set(digests) == set(files) - {"manifest.json", "signature"}
    for name, digest in digests.items():
        assert digest == hashlib.sha1(files[name]).hexdigest(), name

    # pass.json: an event ticket scanning as the first ticket.
    pass_data = json.loads(files["pass.json"])
    numbers = asset_numbers(wallet)
    assert pass_data["formatVersion"] == 1
    assert pass_data["passTypeIdentifier"] == "pass.example.test" and pass_data["teamIdentifier"] == "TEAM123456"
    assert pass_data["barcodes"] == [pass_data["barcode"]]
    assert pass_data["barcode"]["format"] == "PKBarcodeFormatQR"
    assert pass_data["barcode"]["message"] == signed(numbers[0])
    assert pass_data["barcode"]["altText"] == numbers[0]  # printed beneath, for keying in
    assert pass_data["organizationName"] == "Harbour Park"
    assert pass_data["eventTicket"]["primaryFields"][0]["value"] == "Day ticket, adult"
    back = json.dumps(pass_data["eventTicket"]["backFields"])
    assert numbers[1] in back and numbers[2] in back and wallet["manifestUrl"] in back
    assert files["icon.png"].startswith(b"\x89PNG\r\n\x1a\n")

    # signature: detached PKCS#7 over manifest.json, carrying the WWDR intermediate.
    embedded = pkcs7.load_der_pkcs7_certificates(files["signature"])
    assert {c.subject for c in embedded} == {pki["leaf"].subject, pki["wwdr"].subject}
    root_pem = tmp_path / "root.pem"
    verified = openssl_verify(files["signature"], files["manifest.json"], root_pem, tmp_path)
    assert verified.returncode == 0, verified.stderr
    tampered = openssl_verify(files["signature"], files["manifest.json"] + b" ", root_pem, tmp_path)
    assert tampered.returncode != 0


def test_pkpass_of_a_draft_is_refused_and_not_linked(client, anon_client, catalog, settings, tmp_path):
    configure_passkit(settings, tmp_path)
    wallet = wallets(draft(client))[0]
    assert "pass.pkpass" not in page(anon_client, wallet).content.decode()
    assert_problem(anon_client.get(path_of(wallet) + "/pass.pkpass"), 409, "wallet_not_valid")


def test_pkpass_with_an_unreadable_certificate_is_503_not_500(client, anon_client, catalog, settings, tmp_path):
    configure_passkit(settings, tmp_path)
    settings.PASSKIT_CERT_FILE = str(tmp_path / "missing.pem")
    wallet = wallets(issued(client))[0]
    assert_problem(anon_client.get(path_of(wallet) + "/pass.pkpass"), 503, "pass_unavailable")

