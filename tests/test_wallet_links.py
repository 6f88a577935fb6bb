"""Wallets stand on their own: each carries its validity (pending -> valid -> void) and a snapshot
of what its holder is shown, which the order's services push in on every transition; the order
side links its lines to the wallets (OrderWallet). Driven through the partner API, settled by the
issuance service, as in production."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus, OrderWallet
from tests.payloads import line, order_body
from wallets.models import Asset, Wallet, WalletValidity

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
BROWSER = {"HTTP_ACCEPT": "text/html"}
ORDER_TABLES = re.compile(r'"channel_manager_order\w*"')


def create(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def settle(order: dict) -> dict:
    issue_order(order_pk=Order.objects.get(order_id=order["orderId"]).pk)
    return order


def read(client, order: dict) -> dict:
    return client.get(f"/channelManager/{order['orderId']}").json()


def wallets_of(order: dict) -> list[Wallet]:
    return list(Wallet.objects.filter(order_link__order__order_id=order["orderId"]).order_by("pk"))


def validities(order: dict) -> list[str]:
    return [w.validity for w in wallets_of(order)]


def paths(order: dict) -> list[str]:
    return [urlsplit(w["manifestUrl"]).path for item in order["items"] for w in item["wallets"]]


def test_wallets_are_pending_until_minted_for_an_issued_order_then_valid(client, catalog):
    order = create(client, items=[line(quantity=2)])
    assert validities(order) == [WalletValidity.PENDING] * 2
    settle(order)
    assert validities(order) == [WalletValidity.VALID] * 2


def test_a_drafts_wallets_are_pending_until_confirmed(client, catalog):
    order = settle(create(client, paymentReference=None, items=[line(quantity=2)]))
    assert validities(order) == [WalletValidity.PENDING] * 2
    response = client.post(f"/channelManager/{order['orderId']}/confirm", {"paymentReference": "P"}, format="json")
    assert response.status_code == 200, response.content
    assert validities(order) == [WalletValidity.VALID] * 2


def test_cancelling_voids_the_wallets(client, catalog):
    order = settle(create(client, items=[line(quantity=2)]))
    assert client.delete(f"/channelManager/{order['orderId']}").status_code == 200
    wallets = wallets_of(order)
    assert [w.validity for w in wallets] == [WalletValidity.VOID] * 2
    assert all(w.destroyed_at is not None for w in wallets)


def test_replacing_voids_the_old_wallets_and_confirming_leaves_them_void(client, catalog):
    order = settle(create(client, paymentReference=None, items=[line(quantity=2)]))
    old = {w.pk for w in wallets_of(order)}
    body = order_body(sellToOrderReference=read(client, order)["sellToOrderReference"], paymentReference=None,
                      items=[line(quantity=1)])
    assert client.put(f"/channelManager/{order['orderId']}", body, format="json").status_code == 202
    settle(order)
    client.post(f"/channelManager/{order['orderId']}/confirm", {"paymentReference": "P"}, format="json")

    by_pk = {w.pk: w.validity for w in wallets_of(order)}
    assert {by_pk[pk] for pk in old} == {WalletValidity.VOID}
    assert [v for pk, v in by_pk.items() if pk not in old] == [WalletValidity.VALID]
    # The replaced line is gone; its wallets stay linked to the order, without a line.
    assert {link.line_id for link in OrderWallet.objects.filter(wallet_id__in=old)} == {None}


def test_deleting_a_draft_deletes_every_wallet_it_ever_had_and_their_manifests_answer_404(
    client, anon_client, catalog
):
    order = settle(create(client, paymentReference=None, items=[line(quantity=2)]))
    replaced_paths = paths(read(client, order))
    body = order_body(sellToOrderReference=read(client, order)["sellToOrderReference"], paymentReference=None)
    client.put(f"/channelManager/{order['orderId']}", body, format="json")
    settle(order)
    live_paths = paths(read(client, order))
    assert anon_client.get(replaced_paths[0], **JSON).status_code == 410
    assert anon_client.get(live_paths[0], **JSON).status_code == 200

    assert client.delete(f"/channelManager/{order['orderId']}").status_code == 204

    for path in replaced_paths + live_paths:
        assert anon_client.get(path, **JSON).status_code == 404
    assert not Wallet.objects.exists() and not Asset.objects.exists() and not OrderWallet.objects.exists()


def test_the_manifest_reads_no_order_rows(client, anon_client, catalog):
    order = read(client, settle(create(client)))
    path = paths(order)[0]
    for headers in (JSON, BROWSER):
        with CaptureQueriesContext(connection) as ctx:
            assert anon_client.get(path, **headers).status_code == 200
        assert not [q["sql"] for q in ctx.captured_queries if ORDER_TABLES.search(q["sql"])]


def test_the_manifest_shows_the_snapshot_taken_when_the_wallet_was_made(client, anon_client, catalog):
    order = read(client, settle(create(client, customer={"firstName": "Ada", "lastName": "Lovelace"})))
    # Even if the order row were edited behind the services' back, the wallet keeps what it showed.
    Order.objects.filter(order_id=order["orderId"]).update(customer={"firstName": "Eve"}, status=OrderStatus.ERROR)
    body = anon_client.get(paths(order)[0], **JSON).json()
    assert (body["holderName"], body["validity"]) == ("Ada Lovelace", "valid")
    assert body["order"]["sellToOrderReference"] == order["sellToOrderReference"]
    assert body["order"]["buyFromOrderReference"] == order["buyFromOrderReference"]


def test_a_wallet_is_linked_to_one_order_only(client, catalog):
    first, second = create(client), create(client)
    wallet = wallets_of(first)[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderWallet.objects.create(order=Order.objects.get(order_id=second["orderId"]), wallet=wallet)


def test_a_void_wallet_is_always_destroyed_and_the_other_way_round(client, catalog):
    wallet = wallets_of(create(client))[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(validity=WalletValidity.VOID)
