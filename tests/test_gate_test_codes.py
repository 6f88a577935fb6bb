"""The gate and test mode (API.md, "Test mode (partners)" and "Gate admission"): a test asset's
signed QR payload carries `"test": true`, so that a device offline refuses it as test_ticket; the
online scan and offline uploads answer test_ticket; test assets stay out of the sync feed, also
when housekeeping removes them."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from channel_manager.kernel import partners
from channel_manager.ops import housekeeping
from tests.payloads import line, order_body
from tests.test_gate import DAY, NOON, assets_of, gate_client, place, rfc, scan
from tests.test_gate_offline import sync
from tests.test_gate_signing import jwks, verify_with_cryptography
from wallets import views
from wallets.gate import signing
from wallets.gate.devices import create_gate_device
from wallets.models import Asset, GateChange, GateScan

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def test_client(partner) -> APIClient:
    _, raw = partners.issue_api_key(partner=partner, label="test", livemode=False)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


@pytest.fixture
def gate(catalog) -> APIClient:
    return gate_client(create_gate_device(name="North")[1])


def issued(client, *items) -> tuple:
    order = place(client, order_body(items=list(items) or [line("DAY-ADULT", 1)]))
    assets_of(order).update(visit_date=DAY)
    return order, list(assets_of(order))


def manifest_payloads(api_client, anon_client, order) -> list[str]:
    wallet = api_client.get(f"/channelManager/{order.order_id}").json()["items"][0]["wallets"][0]
    body = anon_client.get(urlsplit(wallet["manifestUrl"]).path, **JSON).json()
    return [asset["barcode"]["payload"] for asset in body["assets"]]


def test_a_test_assets_payload_says_test_and_a_live_ones_does_not(client, test_client, anon_client, catalog):
    keys = jwks(anon_client)
    live_order, _ = issued(client)
    test_order, _ = issued(test_client)
    [live_code] = manifest_payloads(client, anon_client, live_order)
    [test_code] = manifest_payloads(test_client, anon_client, test_order)
    live_claims = verify_with_cryptography(live_code, keys)
    test_claims = verify_with_cryptography(test_code, keys)  # what an offline device reads
    assert set(live_claims) == {"a", "i", "d", "t", "x"}
    assert test_claims["test"] is True
    assert {k: v for k, v in test_claims.items() if k != "test"}.keys() == live_claims.keys()


def test_signing_reads_the_mode_from_the_assets_wallet_when_not_told(test_client, catalog):
    _, [asset] = issued(test_client)
    fresh = Asset.objects.get(pk=asset.pk)  # its wallet not loaded
    assert signing.verify(signing.signed_payload(fresh))["test"] is True
    assert "test" not in signing.verify(signing.signed_payload(fresh, livemode=True))


def test_the_online_scan_refuses_a_test_code_as_test_ticket(gate, test_client, catalog):
    _, [asset] = issued(test_client)
    body = scan(gate, signing.signed_payload(asset))
    assert (body["result"], body["reason"]) == ("rejected", "test_ticket")
    assert body["asset"]["assetNumber"] == asset.asset_number
    assert Asset.objects.get(pk=asset.pk).redeemed_at is None


def test_a_test_code_whose_asset_housekeeping_removed_is_still_test_ticket(gate, test_client, catalog, settings):
    _, [asset] = issued(test_client)
    code = signing.signed_payload(asset)
    settings.TEST_DATA_RETENTION_DAYS = 0  # every test order is older than that
    housekeeping.prune_test_data()
    assert not Asset.objects.filter(pk=asset.pk).exists()
    body = scan(gate, code)
    assert (body["result"], body["reason"], body["asset"]) == ("rejected", "test_ticket", None)


def test_offline_uploads_refuse_test_codes_as_test_ticket(gate, test_client, catalog):
    _, [asset] = issued(test_client)
    response = gate.post("/gate/scans/batch", {"scans": [
        {"code": signing.signed_payload(asset), "scannedAt": rfc(NOON)},
        {"code": asset.asset_number, "scannedAt": rfc(NOON)},
    ]}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["result"], r["reason"], r["conflict"]) for r in results] == [("rejected", "test_ticket", None)] * 2
    assert Asset.objects.get(pk=asset.pk).redeemed_at is None
    assert list(GateScan.objects.values_list("reason", flat=True)) == ["test_ticket", "test_ticket"]


def test_cancelling_a_test_order_puts_nothing_in_the_gate_feed(client, test_client, catalog):
    live_order, live_assets = issued(client)
    test_order, _ = issued(test_client)
    assert test_client.delete(f"/channelManager/{test_order.order_id}").status_code == 200
    assert not GateChange.objects.exists()
    assert client.delete(f"/channelManager/{live_order.order_id}").status_code == 200
    assert list(GateChange.objects.values_list("asset_number", flat=True)) == [live_assets[0].asset_number]


@pytest.mark.django_db(transaction=True)
def test_sync_lists_live_voided_codes_only_also_after_test_data_is_pruned(client, test_client, catalog, settings):
    gate = gate_client(create_gate_device(name="Offline")[1])
    live_order, live_assets = issued(client)
    test_order, _ = issued(test_client)
    for api, order in ((test_client, test_order), (client, live_order)):
        assert api.delete(f"/channelManager/{order.order_id}").status_code == 200
    settings.TEST_DATA_RETENTION_DAYS = 0
    housekeeping.prune_test_data()
    answer = sync(gate)
    assert answer["voided"] == [live_assets[0].asset_number] and answer["redeemed"] == []


@pytest.mark.parametrize("item_id, visit_time, kind, version", [
    ("DAY-ADULT", None, "ticket", 10),
    ("SHOW-EVENING", dt.time(19, 30), "ticket", 10),
    ("PARK-AND-SHOW", None, "coupon", 10),
    # The 16 bytes of "test" cost a 24-character itemId one version: only on test codes, which
    # never admit; live codes stay at 10 (tests/test_gate_signing.py).
    ("SUMMER-NIGHTS-PACKAGE-2", dt.time(21, 45), "coupon", 11),
])
def test_a_test_codes_qr_stays_small(test_client, catalog, item_id, visit_time, kind, version):
    _, [asset] = issued(test_client)
    shaped = Asset(asset_number=asset.asset_number, item_code=item_id, asset_type=kind, visit_date=DAY,
                   visit_time=visit_time)
    code = signing.signed_payload(shaped, livemode=False)
    assert views.make_qr(code).version <= version, len(code)
