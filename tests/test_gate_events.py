"""What partners see of the gate (API.md, "Gate admission" and "Notifications"): the
`ota_cm_order_redeemed` event, once per order on its first use, subscribable and signed like
`ota_cm_order_processed`; replaceOrder 409 already_redeemed; hold expiry never touches a used
asset."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import yaml
from django.db import connection
from django.utils import timezone

from channel_manager.orders.models import Order, OrderRedemption, OrderStatus
from channel_manager.orders.receivers import ORDER_REDEEMED
from channel_manager.orders.services import expire_draft_holds
from notifications import tasks
from notifications.models import Event
from notifications.signing import verify_signature
from tests.payloads import line, order_body
from tests.test_api_auth import assert_problem
from tests.test_gate import DAY, NOON, assets_of, gate_client, place, rfc, scan
from wallets.gate.devices import create_gate_device
from wallets.models import Asset, Wallet, WalletValidity

pytestmark = pytest.mark.django_db


@pytest.fixture
def gate(catalog):
    return gate_client(create_gate_device(name="North entrance 1")[1])


def issued(client, quantity: int = 1) -> Order:
    placed = place(client, order_body(items=[line(quantity=quantity)]))
    assert placed.status == OrderStatus.ISSUED
    assets_of(placed).update(visit_date=DAY)
    return placed


def redeemed_events(order: Order | None = None):
    events = Event.objects.filter(event_type=ORDER_REDEEMED)
    return events.filter(subject_id=str(order.order_id)) if order is not None else events


# ---- ota_cm_order_redeemed ---------------------------------------------------------------------


def test_the_first_redemption_of_an_order_announces_it_with_redeemed_at_filled(client, gate):
    order = issued(client, quantity=2)
    first = assets_of(order).first()
    scan(gate, first.asset_number)
    (event,) = redeemed_events(order)
    assets = [a for item in event.payload["order"]["items"] for w in item["wallets"] for a in w["assets"]]
    assert {a["assetNumber"]: a["redeemedAt"] for a in assets}[first.asset_number] == rfc(NOON)
    assert sorted(a["redeemedAt"] is None for a in assets) == [False, True]
    assert event.payload["order"]["orderId"] == str(order.order_id) and event.partner_id == order.partner_id


def test_later_redemptions_of_the_same_order_announce_nothing_more(client, gate):
    order = issued(client, quantity=3)
    for asset in assets_of(order):
        assert scan(gate, asset.asset_number)["result"] == "accepted"
    assert redeemed_events(order).count() == 1
    assert OrderRedemption.objects.get(order_pk=order.pk).first_redeemed_at == NOON


def test_a_refused_scan_announces_nothing(client, gate):
    order = issued(client)
    scan(gate, assets_of(order).get().asset_number, at=NOON + dt.timedelta(days=1))
    assert not redeemed_events().exists()


def test_a_batch_redeeming_several_assets_of_an_order_announces_it_once(client, gate):
    order, other = issued(client, quantity=3), issued(client)
    codes = [a.asset_number for a in assets_of(order)] + [assets_of(other).get().asset_number]
    response = gate.post("/gate/scans/batch", {"scans": [{"code": c, "scannedAt": rfc(NOON)} for c in codes]},
                         format="json")
    assert [r["result"] for r in response.json()["results"]] == ["accepted"] * 4
    assert redeemed_events(order).count() == 1 and redeemed_events(other).count() == 1


def test_a_redemption_moved_to_an_earlier_offline_scan_announces_nothing_more(client, gate, catalog):
    order = issued(client)
    code = assets_of(order).get().asset_number
    scan(gate, code, at=NOON)
    other = gate_client(create_gate_device(name="Offline")[1])
    other.post("/gate/scans/batch", {"scans": [{"code": code, "scannedAt": rfc(NOON - dt.timedelta(minutes=3))}]},
               format="json")
    assert redeemed_events(order).count() == 1


def test_an_order_redeemed_event_is_subscribable_and_delivered_signed(client, gate, settings, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    response = client.post("/notifications/subscriptions", {"eventType": ORDER_REDEEMED, "url": receiver.url()},
                           format="json")
    assert response.status_code == 201, response.content
    secret = response.json()["secret"]
    order = issued(client)
    scan(gate, assets_of(order).get().asset_number)
    (event,) = redeemed_events(order)
    assert tasks.deliver_event_task(event.pk) == 1
    (got,) = receiver.received
    assert got.headers["CM-Event-Id"] == str(event.event_id)
    assert verify_signature(secret=secret, body=got.body, header=got.headers["CM-Signature"])
    # Webhook bodies carry livemode (API.md, "Test mode").
    assert set(got.json) == {"eventId", "eventType", "createdAt", "livemode", "data"}
    assert got.json["eventType"] == ORDER_REDEEMED and got.json["eventId"] == str(event.event_id)
    assert got.json["livemode"] is True and got.json["data"]["order"]["livemode"] is True
    (asset,) = got.json["data"]["order"]["items"][0]["wallets"][0]["assets"]
    assert asset["redeemedAt"] == rfc(NOON)


@pytest.mark.django_db(transaction=True)
def test_twenty_scans_racing_over_one_orders_assets_announce_it_exactly_once(client, catalog):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    order = issued(client, quantity=20)
    codes = list(assets_of(order).values_list("asset_number", flat=True))
    tokens = [create_gate_device(name=f"Gate {n}")[1] for n in range(20)]
    start = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def run(token: str, code: str) -> None:
        try:
            c = gate_client(token)
            start.wait()
            response = c.post("/gate/scans", {"code": code, "scannedAt": rfc(NOON)}, format="json")
            with lock:
                results.append(response.json()["result"])
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(tokens, codes, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["accepted"] * 20
    assert redeemed_events(order).count() == 1


# ---- replace and hold expiry never touch a used asset ------------------------------------------


def draft_with_a_used_asset(client) -> tuple[Order, Asset]:
    """A Draft's tickets are not valid at the gate, so this state is made by hand: the rules
    below hold whatever the gate did."""
    draft = place(client, order_body(paymentReference=None))
    assert draft.status == OrderStatus.DRAFT
    asset = assets_of(draft).get()
    Asset.objects.filter(pk=asset.pk).update(redeemed_at=NOON)
    return draft, asset


def test_replace_of_an_order_with_a_used_asset_is_409_already_redeemed_and_changes_nothing(client, catalog):
    draft, asset = draft_with_a_used_asset(client)
    body = order_body(sellToOrderReference=draft.sell_to_order_reference, items=[line(quantity=2)])
    problem = assert_problem(client.put(f"/channelManager/{draft.order_id}", body, format="json"), 409,
                             "already_redeemed")
    assert problem["redeemedAssets"] == 1
    draft.refresh_from_db()
    assert draft.status == OrderStatus.DRAFT
    assert Wallet.objects.get(pk=asset.wallet_id).validity == WalletValidity.PENDING


def test_replace_of_an_order_without_used_assets_still_replaces(client, catalog):
    draft = place(client, order_body(paymentReference=None))
    body = order_body(sellToOrderReference=draft.sell_to_order_reference, items=[line(quantity=2)])
    assert client.put(f"/channelManager/{draft.order_id}", body, format="json").status_code == 202


def test_hold_expiry_never_touches_a_used_asset(client, catalog):
    used, asset = draft_with_a_used_asset(client)
    unused = place(client, order_body(paymentReference=None))
    past = timezone.now() - dt.timedelta(minutes=1)
    Order.objects.filter(pk__in=[used.pk, unused.pk]).update(hold_expires_at=past)
    assert expire_draft_holds() == 1
    used.refresh_from_db()
    unused.refresh_from_db()
    assert unused.status == OrderStatus.ERROR  # the rule still runs for the others
    assert used.status == OrderStatus.DRAFT
    wallet = Wallet.objects.get(pk=asset.wallet_id)
    assert wallet.validity == WalletValidity.PENDING and wallet.destroyed_at is None


def test_confirming_a_draft_past_its_hold_with_a_used_asset_does_not_expire_it(client, catalog):
    used, asset = draft_with_a_used_asset(client)
    Order.objects.filter(pk=used.pk).update(hold_expires_at=timezone.now() - dt.timedelta(minutes=1))
    response = client.post(f"/channelManager/{used.order_id}/confirm", {"paymentReference": "PAY-1"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "Issued"
    assert Wallet.objects.get(pk=asset.wallet_id).destroyed_at is None


# ---- the schema --------------------------------------------------------------------------------


def test_the_schema_documents_the_offline_operations_and_the_409s(anon_client, catalog):
    schema = yaml.safe_load(anon_client.get("/api/schema/").content)
    operations = {op["operationId"]: op for path in schema["paths"].values() for op in path.values()
                  if isinstance(op, dict) and "operationId" in op}
    for operation_id in ("syncGate", "uploadGateScans"):
        responses = operations[operation_id]["responses"]
        assert {"200", "400", "401", "403"} <= set(responses)
        assert "application/problem+json" in responses["400"]["content"]
    replace = operations["replaceOrder"]
    assert "409" in replace["responses"] and "already_redeemed" in replace["description"]
    assert "already_redeemed" in operations["deleteOrder"]["description"]
    for path in ("/gate/sync", "/gate/scans/batch"):
        assert path in schema["paths"]
