"""confirmOrder, replaceOrder and deleteOrder through the API, in every status of the table."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from catalog.models import Capacity
from channel_manager.kernel.errors import NOT_FOUND
from channel_manager.orders.errors import OrderNotFound
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from tests.payloads import line, order_body, visit_date
from tests.test_api_auth import assert_problem
from wallets.models import Asset, Wallet

pytestmark = pytest.mark.django_db


def create(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def settle(order_id: str) -> Order:
    issue_order(order_pk=Order.objects.get(order_id=order_id).pk)
    return Order.objects.get(order_id=order_id)


def draft(client, **overrides) -> dict:
    created = create(client, paymentReference=None, **overrides)
    assert settle(created["orderId"]).status == OrderStatus.DRAFT
    return created


def issued(client, **overrides) -> dict:
    created = create(client, **overrides)
    assert settle(created["orderId"]).status == OrderStatus.ISSUED
    return created


def error(client) -> dict:
    created = create(client, items=[line("SHOW-EVENING", 1, visitTime="18:00")])
    assert settle(created["orderId"]).status == OrderStatus.ERROR
    return created


def set_status(order_id: str, status: str) -> None:
    Order.objects.filter(order_id=order_id).update(status=status)


# ---- confirmOrder -----------------------------------------------------------------------------


def confirm(client, order_id, payment_reference="PAY-1"):
    return client.post(f"/channelManager/{order_id}/confirm", {"paymentReference": payment_reference}, format="json")


def test_confirm_moves_draft_to_issued_with_the_payment_reference(client, catalog):
    order = draft(client)
    response = confirm(client, order["orderId"], "PAY-99")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Issued" and body["paymentReference"] == "PAY-99"


def test_confirm_on_issued_is_a_no_op_returning_the_order_unchanged(client, catalog):
    order = issued(client)
    before = client.get(f"/channelManager/{order['orderId']}").json()
    response = confirm(client, order["orderId"], "PAY-OTHER")
    assert response.status_code == 200
    assert response.json() == before


@pytest.mark.parametrize("status", ["Submitted", "Scheduled", "Processing", "Error", "Cancelled"])
def test_confirm_elsewhere_is_409_invalid_state_with_the_status(client, catalog, status):
    order = create(client)
    set_status(order["orderId"], status)
    problem = assert_problem(confirm(client, order["orderId"]), 409, "invalid_state")
    assert problem["orderStatus"] == status


def test_confirm_needs_a_payment_reference(client, catalog):
    order = draft(client)
    response = client.post(f"/channelManager/{order['orderId']}/confirm", {}, format="json")
    assert_problem(response, 400, "validation_error")
    assert Order.objects.get(order_id=order["orderId"]).status == OrderStatus.DRAFT


# ---- replaceOrder -----------------------------------------------------------------------------


def replace(client, order: dict, **overrides):
    body = order_body(sellToOrderReference=order["sellToOrderReference"], **overrides)
    return client.put(f"/channelManager/{order['orderId']}", body, format="json")


@pytest.mark.parametrize("make", [draft, error])
def test_replace_in_draft_or_error_is_202_submitted_and_keeps_identity(client, catalog, make):
    order = make(client)
    response = replace(client, order, items=[line("DAY-ADULT", 3)])
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "Submitted"
    for field in ("orderId", "partnerId", "sellToOrderReference", "buyFromOrderReference", "createdAt"):
        assert body[field] == order[field]
    assert body["items"][0]["quantity"] == 3 and len(body["items"][0]["wallets"]) == 3


@pytest.mark.parametrize("status", ["Submitted", "Scheduled", "Processing", "Issued", "Cancelled"])
def test_replace_elsewhere_is_409_invalid_state(client, catalog, status):
    order = create(client)
    set_status(order["orderId"], status)
    assert_problem(replace(client, order), 409, "invalid_state")


@pytest.mark.parametrize(
    ("field", "value"),
    [("sellToOrderReference", "OTHER"), ("orderId", "00000000-0000-0000-0000-000000000000"),
     ("buyFromOrderReference", "CM-99999999")],
)
def test_replace_cannot_change_identity(client, catalog, field, value):
    order = draft(client)
    body = order_body(sellToOrderReference=order["sellToOrderReference"])
    body[field] = value
    response = client.put(f"/channelManager/{order['orderId']}", body, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert Order.objects.get(order_id=order["orderId"]).status == OrderStatus.DRAFT


def test_replace_with_another_partner_id_is_403(client, catalog):
    order = draft(client)
    body = order_body("other", sellToOrderReference=order["sellToOrderReference"])
    assert_problem(client.put(f"/channelManager/{order['orderId']}", body, format="json"), 403, "partner_mismatch")


def test_replace_destroys_every_wallet_and_frees_capacity_and_references(client, catalog):
    order = draft(client, items=[line("DAY-ADULT", 2, wallet={"externalReferenceNumbers": ["R-1", "R-2"]})])
    old_url = client.get(f"/channelManager/{order['orderId']}").json()["items"][0]["wallets"][0]["manifestUrl"]
    assert Capacity.objects.get().sold == 2
    response = replace(client, order, items=[line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["R-2"]})])
    assert response.status_code == 202
    assert Capacity.objects.get().sold == 0
    assert Wallet.objects.filter(destroyed_at__isnull=True).count() == 1
    assert client.get(urlsplit(old_url).path).status_code == 410
    # R-1 is free again for another order.
    assert create(client, items=[line(wallet={"externalReferenceNumbers": ["R-1"]})])


def test_replace_reissues_the_order(client, catalog):
    order = error(client)
    replace(client, order, items=[line("SHOW-EVENING", 1, visitTime="19:30")])
    assert settle(order["orderId"]).status == OrderStatus.ISSUED
    live = Asset.objects.filter(wallet__order_link__order__order_id=order["orderId"], wallet__destroyed_at__isnull=True)
    assert live.count() == 1


def test_replace_with_invalid_body_changes_nothing(client, catalog):
    order = draft(client)
    assert replace(client, order, items=[]).status_code == 400
    assert Order.objects.get(order_id=order["orderId"]).status == OrderStatus.DRAFT
    assert Wallet.objects.filter(destroyed_at__isnull=True).count() == 1


def test_replace_may_reuse_the_orders_own_references(client, catalog):
    refs = {"externalReferenceNumbers": ["OWN-1"]}
    order = draft(client, items=[line(wallet=refs)])
    assert replace(client, order, items=[line(wallet=refs)]).status_code == 202


def test_replace_may_not_take_another_orders_live_reference(client, catalog):
    create(client, items=[line(wallet={"externalReferenceNumbers": ["TAKEN"]})])
    order = draft(client)
    response = replace(client, order, items=[line(wallet={"externalReferenceNumbers": ["TAKEN"]})])
    assert_problem(response, 400, "reference_in_use")


# ---- deleteOrder ------------------------------------------------------------------------------


def test_delete_issued_cancels_keeps_the_row_and_destroys_wallets(client, catalog):
    order = issued(client, items=[line("DAY-ADULT", 2)])
    assert Capacity.objects.get().sold == 2
    response = client.delete(f"/channelManager/{order['orderId']}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Cancelled"
    assert all(i["wallets"] == [] for i in body["items"])
    assert Capacity.objects.get().sold == 0
    assert client.get(f"/channelManager/{order['orderId']}").json()["status"] == "Cancelled"


def test_delete_cancelled_is_200_unchanged(client, catalog):
    order = issued(client)
    first = client.delete(f"/channelManager/{order['orderId']}").json()
    again = client.delete(f"/channelManager/{order['orderId']}")
    assert again.status_code == 200 and again.json() == first


@pytest.mark.parametrize("make", [draft, error])
def test_delete_draft_or_error_is_204_and_the_order_is_gone(client, catalog, make):
    order = make(client)
    response = client.delete(f"/channelManager/{order['orderId']}")
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.get(f"/channelManager/{order['orderId']}"), 404, "not_found")
    assert Capacity.objects.filter(sold__gt=0).count() == 0


def test_deleted_draft_frees_its_partner_reference(client, catalog):
    order = draft(client)
    assert client.delete(f"/channelManager/{order['orderId']}").status_code == 204
    body = order_body(sellToOrderReference=order["sellToOrderReference"])
    again = client.post("/channelManager", body, format="json")
    assert again.status_code == 202 and again.json()["orderId"] != order["orderId"]


@pytest.mark.parametrize("status", ["Submitted", "Scheduled", "Processing"])
def test_delete_in_flight_is_409_invalid_state(client, catalog, status):
    order = create(client)
    set_status(order["orderId"], status)
    problem = assert_problem(client.delete(f"/channelManager/{order['orderId']}"), 409, "invalid_state")
    assert problem["orderStatus"] == status
    assert Order.objects.filter(order_id=order["orderId"]).exists()


def test_cancelled_wallet_manifest_answers_410(client, catalog):
    order = issued(client)
    url = client.get(f"/channelManager/{order['orderId']}").json()["items"][0]["wallets"][0]["manifestUrl"]
    path = urlsplit(url).path
    assert client.get(path).status_code == 200
    client.delete(f"/channelManager/{order['orderId']}")
    assert client.get(path).status_code == 410


def test_delete_draft_frees_its_capacity(client, catalog):
    order = draft(client, items=[line("SHOW-EVENING", 3, visitTime="19:30", visitDate=visit_date())])
    assert Capacity.objects.get().sold == 3
    client.delete(f"/channelManager/{order['orderId']}")
    assert Capacity.objects.get().sold == 0


def test_an_order_deleted_by_a_concurrent_call_answers_404_not_500(client, catalog):
    from channel_manager.orders import services

    order = draft(client)
    stale = Order.objects.get(order_id=order["orderId"])  # read before the other call deleted it
    assert services.delete_order(order=Order.objects.get(pk=stale.pk)) is None
    for call in (
        lambda: services.delete_order(order=stale),
        lambda: services.confirm_order(order=stale, payment_reference="P"),
    ):
        with pytest.raises(OrderNotFound) as caught:
            call()
        assert (caught.value.kind, caught.value.code) == (NOT_FOUND, "not_found")
