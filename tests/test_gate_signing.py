"""Signed QR payloads (API.md, "Gate admission", Offline): JWS compact, EdDSA/Ed25519, with `kid`;
the public JWKS at GET /gate/keys; keys sealed at rest or read from a key file; rotation.

The JWS is checked with `cryptography`'s Ed25519 directly, not with the library that signed it.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import threading
import zipfile
from io import StringIO
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.management import CommandError, call_command
from django.db import connection

from tests.payloads import line, order_body
from tests.test_gate import DAY, NOON, assets_of, gate_client, place, scan
from tests.test_manifests import configure_passkit
from wallets import views
from wallets.gate import keystore, signing
from wallets.gate.devices import create_gate_device
from wallets.models import Asset, GateSigningKey

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
BROWSER = {"HTTP_ACCEPT": "text/html"}


# ---- helpers ----------------------------------------------------------------------------------


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(code: str) -> tuple[dict, dict, bytes]:
    header, payload, signature = code.split(".")
    return json.loads(b64decode(header)), json.loads(b64decode(payload)), b64decode(signature)


def jwks(anon_client) -> dict:
    response = anon_client.get("/gate/keys")
    assert response.status_code == 200
    return response.json()


def verify_with_cryptography(code: str, keys: dict) -> dict:
    """Checks the signature with Ed25519PublicKey against the JWKS; returns the claims."""
    header, claims, signature = parts(code)
    [jwk] = [key for key in keys["keys"] if key["kid"] == header["kid"]]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    public_key = Ed25519PublicKey.from_public_bytes(b64decode(jwk["x"]))
    signing_input = code.rsplit(".", 1)[0].encode()
    public_key.verify(signature, signing_input)  # raises InvalidSignature
    return claims


def issued_manifest(client, anon_client, **overrides) -> dict:
    order = place(client, order_body(**overrides))
    wallet = client.get(f"/channelManager/{order.order_id}").json()["items"][0]["wallets"][0]
    response = anon_client.get(urlsplit(wallet["manifestUrl"]).path, **JSON)
    assert response.status_code == 200
    body = response.json()
    body["_path"] = urlsplit(wallet["manifestUrl"]).path
    body["_order"] = order
    return body


def forged(claims: dict, *, kid: str, key: Ed25519PrivateKey | None = None) -> str:
    header = b64encode(json.dumps({"alg": "EdDSA", "kid": kid}, separators=(",", ":")).encode())
    payload = b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = (key or Ed25519PrivateKey.generate()).sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{b64encode(signature)}"


@pytest.fixture
def gate(catalog):
    return gate_client(create_gate_device(name="North entrance 1")[1])


@pytest.fixture
def today_ticket(client, anon_client, catalog) -> tuple[Asset, str]:
    """An Issued day ticket whose visit is DAY (the gate tests' scanning day), and its QR payload."""
    body = issued_manifest(client, anon_client, items=[line("DAY-ADULT", 1)])
    asset = assets_of(body["_order"]).get()
    Asset.objects.filter(pk=asset.pk).update(visit_date=DAY)
    asset.refresh_from_db()
    return asset, signing.signed_payload(asset)


# ---- the JWS ----------------------------------------------------------------------------------


def test_the_qr_payload_is_a_jws_that_verifies_with_the_public_jwks_through_cryptography(
    client, anon_client, catalog
):
    body = issued_manifest(client, anon_client, items=[line("DAY-ADULT", 1)])
    [asset] = body["assets"]
    code = asset["barcode"]["payload"]
    header, _, _ = parts(code)
    assert header == {"alg": "EdDSA", "kid": header["kid"]}
    claims = verify_with_cryptography(code, jwks(anon_client))
    assert claims == {"a": asset["assetNumber"], "i": "DAY-ADULT", "d": asset["visitDate"], "t": None,
                      "x": "ticket"}


def test_a_changed_byte_of_the_signed_payload_fails_verification_through_cryptography(
    client, anon_client, catalog
):
    code = issued_manifest(client, anon_client)["assets"][0]["barcode"]["payload"]
    header, payload, signature = code.split(".")
    claims = json.loads(b64decode(payload))
    claims["d"] = "2099-01-01"
    tampered = f"{header}.{b64encode(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(InvalidSignature):
        verify_with_cryptography(tampered, jwks(anon_client))


def test_a_timed_ticket_and_a_coupon_carry_their_time_and_kind(client, anon_client, catalog):
    body = issued_manifest(client, anon_client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")])
    keys = jwks(anon_client)
    claims = [verify_with_cryptography(a["barcode"]["payload"], keys) for a in body["assets"]]
    assert [(c["i"], c["t"], c["x"]) for c in claims] == [
        ("DAY-ADULT", None, "ticket"), ("SHOW-EVENING", "19:30", "ticket"), ("PARK-AND-SHOW", None, "coupon"),
    ]
    assert [c["a"] for c in claims] == [a["assetNumber"] for a in body["assets"]]


def test_signing_a_payload_costs_no_query_once_the_keys_are_loaded(today_ticket, django_assert_num_queries):
    asset, _ = today_ticket
    signing.signed_payload(asset)
    with django_assert_num_queries(0):
        code = signing.signed_payload(asset)
        assert signing.verify(code)["a"] == asset.asset_number


# ---- the online scan --------------------------------------------------------------------------


def test_a_signed_payload_scans_as_its_asset(gate, today_ticket):
    asset, code = today_ticket
    body = scan(gate, code)
    assert body["result"] == "accepted" and body["asset"]["assetNumber"] == asset.asset_number
    again = scan(gate, asset.asset_number)
    assert again["reason"] == "already_redeemed"


def test_a_tampered_payload_is_unknown_code_and_redeems_nothing(gate, today_ticket, client):
    asset, code = today_ticket
    other = assets_of(place(client, order_body(items=[line("DAY-ADULT", 1)]))).get()
    Asset.objects.filter(pk=other.pk).update(visit_date=DAY)
    header, payload, signature = code.split(".")
    claims = json.loads(b64decode(payload))
    claims["a"] = other.asset_number
    tampered = f"{header}.{b64encode(json.dumps(claims, separators=(',', ':')).encode())}.{signature}"
    assert scan(gate, tampered) == {"result": "rejected", "reason": "unknown_code", "asset": None,
                                    "redeemedAt": None, "previousRedemption": None}
    assert not Asset.objects.filter(redeemed_at__isnull=False).exists()


def test_a_tampered_signature_is_unknown_code(gate, today_ticket):
    _, code = today_ticket
    signature = bytearray(b64decode(code.rsplit(".", 1)[1]))
    signature[10] ^= 0x01
    assert scan(gate, code.rsplit(".", 1)[0] + "." + b64encode(bytes(signature)))["reason"] == "unknown_code"


def test_a_code_signed_by_a_key_not_listed_is_unknown_code(gate, today_ticket):
    asset, code = today_ticket
    claims = parts(code)[1]
    listed_kid = parts(code)[0]["kid"]
    assert scan(gate, forged(claims, kid=listed_kid))["reason"] == "unknown_code"  # listed kid, wrong key
    assert scan(gate, forged(claims, kid="XXXXXXXX"))["reason"] == "unknown_code"  # unknown kid
    assert Asset.objects.get(pk=asset.pk).redeemed_at is None


@pytest.mark.parametrize("code", [
    "a" * 40 + "." + "b" * 40 + "." + "c" * 40,  # not base64 JSON
    b64encode(b'{"alg":"none","kid":"x"}') + "." + b64encode(b'{"a":"X"}') + "." + "A" * 40,  # alg none
    b64encode(b'{"alg":"HS256","kid":"x"}') + "." + b64encode(b'{"a":"X"}') + "." + "A" * 43,
    b64encode(b"[1, 2]") + "." + b64encode(b'{"a":"X"}') + "." + "A" * 86,  # header not an object
    "%%%." * 2 + "%" * 80,
])
def test_a_malformed_jws_is_unknown_code(gate, today_ticket, code):
    assert scan(gate, code)["reason"] == "unknown_code"


def test_a_signed_payload_whose_claims_are_not_an_object_is_unknown_code(gate, today_ticket):
    private_key = Ed25519PrivateKey.generate()
    kid = parts(today_ticket[1])[0]["kid"]
    header = b64encode(json.dumps({"alg": "EdDSA", "kid": kid}).encode())
    payload = b64encode(b"[1,2,3]" + b" " * 40)
    code = f"{header}.{payload}.{b64encode(private_key.sign(f'{header}.{payload}'.encode()))}"
    assert signing.verify(code) is None


# ---- rotation ---------------------------------------------------------------------------------


def test_after_rotation_new_codes_carry_the_new_kid_and_old_codes_still_scan(gate, today_ticket, anon_client):
    asset, old_code = today_ticket
    old_kid = parts(old_code)[0]["kid"]
    out = StringIO()
    call_command("rotate_gate_keys", "--json", stdout=out)
    rotation = json.loads(out.getvalue())
    assert rotation["retiredKid"] == old_kid and rotation["kid"] != old_kid

    new_code = signing.signed_payload(asset)
    assert parts(new_code)[0]["kid"] == rotation["kid"]
    keys = jwks(anon_client)
    assert [k["kid"] for k in keys["keys"]] == [rotation["kid"], old_kid]  # the signing key first
    assert verify_with_cryptography(old_code, keys)["a"] == verify_with_cryptography(new_code, keys)["a"]
    assert scan(gate, old_code)["result"] == "accepted"
    assert scan(gate, new_code)["reason"] == "already_redeemed"


def test_a_retired_key_stays_listed_until_the_last_day_its_codes_can_be_used(today_ticket, settings):
    asset, _ = today_ticket
    far = dt.date.today() + dt.timedelta(days=400)
    Asset.objects.filter(pk=asset.pk).update(visit_date=far)
    old = GateSigningKey.objects.get(active=True)
    rotation = keystore.rotate_keys()
    assert rotation.retired.kid == old.kid and rotation.retired.listed_until == far
    # Nothing lives long: still listed for GATE_KEY_RETIRED_MIN_DAYS after retirement.
    Asset.objects.filter(pk=asset.pk).update(visit_date=dt.date.today() - dt.timedelta(days=30))
    second = keystore.rotate_keys()
    assert (second.retired.listed_until - dt.date.today()).days in (6, 7, 8)  # venue's today vs. UTC's


def test_a_key_past_its_listed_until_is_no_longer_listed_nor_accepted(gate, today_ticket, anon_client):
    _, old_code = today_ticket
    old_kid = parts(old_code)[0]["kid"]
    keystore.rotate_keys()
    GateSigningKey.objects.filter(kid=old_kid).update(listed_until=dt.date.today() - dt.timedelta(days=2))
    signing.clear_key_cache()
    assert old_kid not in [k["kid"] for k in jwks(anon_client)["keys"]]
    assert scan(gate, old_code)["reason"] == "unknown_code"


def test_rotate_gate_keys_revoke_delists_the_old_key_at_once(gate, today_ticket, anon_client):
    _, old_code = today_ticket
    out = StringIO()
    call_command("rotate_gate_keys", "--revoke", stdout=out)
    assert "revoked" in out.getvalue()
    assert [k["kid"] for k in jwks(anon_client)["keys"]] == [GateSigningKey.objects.get(active=True).kid]
    assert scan(gate, old_code)["reason"] == "unknown_code"


def test_a_rotation_in_another_process_is_seen_at_once_for_an_unknown_kid(gate, today_ticket):
    asset, _ = today_ticket
    signing.public_jwks()
    ring = signing._ring
    ring.loaded_at -= 10  # loaded a while ago, well within GATE_KEY_CACHE_SECONDS
    new = keystore.rotate_keys().new
    signing._ring = ring  # another process rotated: this one's cache was not told
    code = forged(signing.claims_of(asset), kid=new.kid, key=keystore.unseal(new.sealed_private_key, kid=new.kid))
    assert scan(gate, code)["result"] == "accepted"


# ---- storage ----------------------------------------------------------------------------------


def raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def test_migrate_made_the_first_key_and_its_private_key_is_sealed_at_rest(settings):
    row = GateSigningKey.objects.get(active=True)
    sealed = bytes(row.sealed_private_key)
    raw = raw_private(keystore.unseal(sealed, kid=row.kid))
    assert len(raw) == 32 and raw not in sealed
    assert b64encode(raw).encode() not in sealed and raw.hex().encode() not in sealed
    # The stored public key is the sealed private key's.
    public = keystore.unseal(sealed, kid=row.kid).public_key()
    assert b64encode(keystore.raw_public(public)) == row.public_x and keystore.kid_for(public) == row.kid


def test_another_secret_key_cannot_open_the_sealed_key_but_a_fallback_can(settings):
    row = GateSigningKey.objects.get(active=True)
    old_secret = settings.SECRET_KEY
    settings.SECRET_KEY = "another-secret-key-entirely-" + "x" * 30
    with pytest.raises(keystore.GateKeyError, match="rotate_gate_keys"):
        keystore.unseal(row.sealed_private_key, kid=row.kid)
    settings.SECRET_KEY_FALLBACKS = [old_secret]
    assert keystore.unseal(row.sealed_private_key, kid=row.kid)


def test_a_signing_key_that_no_longer_opens_is_retired_and_replaced(settings, today_ticket, caplog):
    asset, _ = today_ticket
    old_code = signing.signed_payload(asset)
    old = GateSigningKey.objects.get(active=True)
    settings.SECRET_KEY = "another-secret-key-entirely-" + "x" * 30  # no fallback
    signing.clear_key_cache()
    code = signing.signed_payload(asset)
    new = GateSigningKey.objects.get(active=True)
    assert new.kid != old.kid and parts(code)[0]["kid"] == new.kid
    assert "gate signing key unusable" in caplog.text
    # The old key stays listed: codes it signed still verify.
    assert signing.verify(old_code)["a"] == signing.verify(code)["a"] == asset.asset_number


def test_a_sealed_key_moved_to_another_kid_does_not_open():
    row = GateSigningKey.objects.get(active=True)
    with pytest.raises(keystore.GateKeyError):
        keystore.unseal(row.sealed_private_key, kid="OTHERKID")


def test_without_any_key_the_first_use_makes_one(today_ticket):
    asset, _ = today_ticket
    GateSigningKey.objects.all().delete()
    code = signing.signed_payload(asset)
    assert GateSigningKey.objects.get().kid == parts(code)[0]["kid"]
    assert signing.verify(code)["a"] == asset.asset_number


@pytest.mark.django_db(transaction=True)
def test_processes_racing_to_make_the_first_key_make_one(catalog):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    GateSigningKey.objects.all().delete()
    start = threading.Barrier(8)
    kids: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            start.wait()
            key, _ = keystore.first_key()
            with lock:
                kids.append(key.kid)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kids) == 8 and len(set(kids)) == 1
    assert GateSigningKey.objects.count() == 1


def test_the_key_file_setting_signs_with_the_files_first_key_and_lists_every_key(
    settings, tmp_path, today_ticket, gate, anon_client
):
    asset, db_code = today_ticket
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pem = b"".join(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()) for k in (first, second))
    (tmp_path / "gate.pem").write_bytes(pem)
    settings.GATE_SIGNING_KEY_FILE = str(tmp_path / "gate.pem")
    signing.clear_key_cache()

    code = signing.signed_payload(asset)
    first_kid, second_kid = keystore.kid_for(first.public_key()), keystore.kid_for(second.public_key())
    assert parts(code)[0]["kid"] == first_kid
    keys = jwks(anon_client)
    # The file's keys, then the database key still listed (codes it signed keep verifying).
    assert [k["kid"] for k in keys["keys"]] == [first_kid, second_kid, parts(db_code)[0]["kid"]]
    first.public_key().verify(parts(code)[2], code.rsplit(".", 1)[0].encode())
    assert verify_with_cryptography(code, keys)["a"] == asset.asset_number
    assert scan(gate, code)["result"] == "accepted"
    with pytest.raises(CommandError, match="GATE_SIGNING_KEY_FILE"):
        call_command("rotate_gate_keys")


def test_an_unreadable_key_file_is_a_clear_error(settings, tmp_path, today_ticket):
    (tmp_path / "bad.pem").write_bytes(b"not a key")
    settings.GATE_SIGNING_KEY_FILE = str(tmp_path / "bad.pem")
    with pytest.raises(keystore.GateKeyError, match="holds no PEM private key"):
        signing.signed_payload(today_ticket[0])
    settings.GATE_SIGNING_KEY_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(keystore.GateKeyError, match="cannot read"):
        signing.signed_payload(today_ticket[0])


# ---- GET /gate/keys ---------------------------------------------------------------------------


def test_gate_keys_needs_no_authentication_and_is_publicly_cacheable(anon_client, catalog):
    response = anon_client.get("/gate/keys", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    body = response.json()
    assert body == {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": GateSigningKey.objects.get(active=True).kid,
                              "x": GateSigningKey.objects.get(active=True).public_x}]}
    again = anon_client.get("/gate/keys", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == response["ETag"] and again["Cache-Control"] == "public, max-age=300"


def test_gate_keys_etag_changes_when_the_keys_do(anon_client, catalog):
    before = anon_client.get("/gate/keys")["ETag"]
    keystore.rotate_keys()
    after = anon_client.get("/gate/keys", HTTP_IF_NONE_MATCH=before)
    assert after.status_code == 200 and after["ETag"] != before


def test_the_schema_documents_get_gate_keys_without_authentication(anon_client):
    schema = yaml.safe_load(anon_client.get("/api/schema/").content)
    operation = schema["paths"]["/gate/keys"]["get"]
    assert operation["operationId"] == "getGateKeys"
    assert operation.get("security", []) in ([], [{}])  # no scheme: anyone may read it
    assert "security" not in schema  # (no global scheme applies instead)
    assert {"200", "304"} <= set(operation["responses"])


# ---- the page, the JSON, the pass -------------------------------------------------------------


def test_the_manifest_json_lists_the_asset_number_and_its_signed_payload(client, anon_client, catalog):
    body = issued_manifest(client, anon_client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")])
    for asset in body["assets"]:
        assert asset["barcode"]["format"] == "QR"
        assert signing.verify(asset["barcode"]["payload"])["a"] == asset["assetNumber"]


def test_the_page_shows_the_signed_payloads_qr_and_the_number_beneath(client, anon_client, catalog):
    body = issued_manifest(client, anon_client, items=[line("DAY-ADULT", 1)])
    [asset] = body["assets"]
    html = anon_client.get(body["_path"], **BROWSER).content.decode()
    label = f"QR code of the ticket {asset['name']}, number {asset['assetNumber']}"
    assert views.qr_svg(asset["barcode"]["payload"], label=label) in html
    assert f'<p class="number" data-asset-number="{asset["assetNumber"]}">{asset["assetNumber"]}</p>' in html


def test_the_qr_code_decodes_back_to_the_jws(client, anon_client, catalog):
    import zxingcpp
    from PIL import Image

    body = issued_manifest(client, anon_client, items=[line("PARK-AND-SHOW", 1, visitTime="19:30")])
    for asset in body["assets"]:
        png = io.BytesIO()
        views.make_qr(asset["barcode"]["payload"]).save(png, kind="png", scale=4, border=4)
        png.seek(0)
        # QR codes only: a 1D reader may see a phantom barcode in a QR code's modules.
        found = zxingcpp.read_barcodes(Image.open(png), formats=zxingcpp.BarcodeFormat.QRCode)
        decoded = [result.text for result in found]
        assert decoded == [asset["barcode"]["payload"]]


@pytest.mark.parametrize("item_id, visit_time, kind", [
    ("DAY-ADULT", None, "ticket"),
    ("SHOW-EVENING", "19:30", "ticket"),
    ("SUMMER-NIGHTS-PACKAGE-2", "21:45", "coupon"),  # a long (24-character) itemId
])
def test_a_realistic_qr_code_stays_at_version_10_or_below(today_ticket, item_id, visit_time, kind):
    asset = today_ticket[0]
    asset.item_code, asset.asset_type = item_id, kind
    asset.visit_time = dt.time.fromisoformat(visit_time) if visit_time else None
    asset.visit_date = dt.date(2027, 12, 31)
    qr = views.make_qr(signing.signed_payload(asset))
    assert qr.version <= 10, f"version {qr.version} for {len(signing.signed_payload(asset))} characters"
    assert qr.error in ("L", "M", "Q", "H")


def test_the_pass_barcode_is_the_signed_payload_with_the_asset_number_as_alt_text(
    client, anon_client, catalog, settings, tmp_path
):
    configure_passkit(settings, tmp_path)
    body = issued_manifest(client, anon_client, items=[line("DAY-ADULT", 1)])
    [asset] = body["assets"]
    response = anon_client.get(body["_path"] + "/pass.pkpass")
    assert response.status_code == 200
    pass_data = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("pass.json"))
    assert pass_data["barcode"]["message"] == asset["barcode"]["payload"]
    assert pass_data["barcode"]["altText"] == asset["assetNumber"]
    assert signing.verify(pass_data["barcode"]["message"])["a"] == asset["assetNumber"]


def test_a_scan_at_noon_on_the_visit_day_accepts_the_pages_code(client, anon_client, gate, catalog):
    """End to end: the code the customer's page shows is the code the gate accepts."""
    body = issued_manifest(client, anon_client, items=[line("DAY-ADULT", 1)])
    Asset.objects.filter(asset_number=body["assets"][0]["assetNumber"]).update(visit_date=NOON.date())
    assert scan(gate, body["assets"][0]["barcode"]["payload"])["result"] == "accepted"
