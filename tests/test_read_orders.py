"""getOrder and findOrders: the partner's own orders, filters, newest first, cursor pagination."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channel_manager.orders.models import Order
from tests.payloads import line, order_body
from tests.test_api_auth import assert_problem

pytestmark = pytest.mark.django_db


def create(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def test_get_order_returns_what_create_returned_now_queued(client, catalog):
    created = create(client)
    response = client.get(f"/channelManager/{created['orderId']}")
    assert response.status_code == 200
    got = response.json()
    # Accepted as Submitted, and queued (Scheduled) in the same transaction.
    assert (created["status"], got["status"]) == ("Submitted", "Scheduled")
    assert got["updatedAt"] >= created["updatedAt"]
    for field in ("status", "updatedAt"):
        del got[field], created[field]
    assert got == created


def test_get_order_with_a_malformed_id_is_404(client, catalog):
    assert_problem(client.get("/channelManager/not-a-uuid"), 404, "not_found")


def test_get_order_of_500_wallets_costs_a_fixed_number_of_queries(client, catalog, django_assert_max_num_queries):
    small = create(client, items=[line(quantity=1)])
    large = create(client, items=[line(quantity=250), line("PARK-AND-SHOW", 250)])
    with django_assert_max_num_queries(6) as one:
        client.get(f"/channelManager/{small['orderId']}")
    with django_assert_max_num_queries(len(one.captured_queries)):
        body = client.get(f"/channelManager/{large['orderId']}").json()
    assert sum(len(i["wallets"]) for i in body["items"]) == 500


def test_find_orders_is_newest_first(client, catalog):
    ids = [create(client)["orderId"] for _ in range(3)]
    response = client.get("/channelManager")
    assert response.status_code == 200
    assert [o["orderId"] for o in response.json()["results"]] == list(reversed(ids))
    assert response.json()["next"] is None


def test_find_orders_by_sell_to_order_reference(client, catalog):
    create(client)
    wanted = create(client, sellToOrderReference="FIND-ME")
    results = client.get("/channelManager", {"sellToOrderReference": "FIND-ME"}).json()["results"]
    assert [o["orderId"] for o in results] == [wanted["orderId"]]


def test_find_orders_by_status(client, catalog):
    a = create(client)
    create(client)
    Order.objects.filter(order_id=a["orderId"]).update(status="Error")
    results = client.get("/channelManager", {"status": "Error"}).json()["results"]
    assert [o["orderId"] for o in results] == [a["orderId"]]


def test_find_orders_updated_since(client, catalog):
    old = create(client)
    Order.objects.filter(order_id=old["orderId"]).update(updated_at=timezone.now() - dt.timedelta(days=2))
    new = create(client)
    since = (timezone.now() - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    results = client.get("/channelManager", {"updatedSince": since}).json()["results"]
    assert [o["orderId"] for o in results] == [new["orderId"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "Lost"}, "status"), ({"updatedSince": "yesterday"}, "updatedSince"),
     ({"cursor": "garbage!"}, "cursor"), ({"limit": "0"}, "limit")],
)
def test_find_orders_rejects_bad_filters(client, catalog, params, field):
    response = client.get("/channelManager", params)
    problem = assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]


def test_find_orders_pages_with_a_cursor_through_every_order_once(client, catalog):
    ids = [create(client)["orderId"] for _ in range(7)]
    seen, url, pages = [], "/channelManager?limit=3", 0
    while url:
        body = client.get(url).json()
        seen += [o["orderId"] for o in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == list(reversed(ids))
    assert pages == 3


def test_cursor_keeps_the_filters(client, catalog):
    for _ in range(3):
        create(client, paymentReference=None)
    body = client.get("/channelManager", {"status": "Scheduled", "limit": 2}).json()
    assert "status=Scheduled" in body["next"]


def wallet_count(order: dict) -> int:
    return sum(len(item["wallets"]) for item in order["items"])


def test_find_orders_bounds_a_page_by_wallets_as_well_as_by_orders(client, catalog, settings):
    settings.MAX_WALLETS_PER_PAGE = 5
    sizes = [3, 3, 1, 1, 6, 2]  # created oldest first; listed newest first: 2, 6, 1, 1, 3, 3
    ids = [create(client, items=[line(quantity=n)])["orderId"] for n in sizes]
    pages, url = [], "/channelManager?limit=100"
    while url:
        body = client.get(url).json()
        assert body["results"], "every page holds at least one order"
        pages.append([wallet_count(order) for order in body["results"]])
        url = body["next"]
    # A page stops before the order that would take it over 5 wallets; an order larger than the
    # bound comes alone; the cursor continues with the next order, every order once.
    assert pages == [[2], [6], [1, 1, 3], [3]]
    everything, url = [], "/channelManager?limit=2"
    while url:
        body = client.get(url).json()
        everything += [o["orderId"] for o in body["results"]]
        url = body["next"]
    assert everything == list(reversed(ids))


def test_find_orders_reads_the_contents_of_the_orders_of_the_page_only(client, catalog, settings, monkeypatch):
    from channel_manager.orders import selectors

    settings.MAX_WALLETS_PER_PAGE = 10
    for _ in range(4):
        create(client, items=[line(quantity=10)])
    loaded: list[int] = []
    real = selectors.orders_with_contents

    def spy(queryset=None):
        result = real(queryset)
        loaded.extend(result.values_list("pk", flat=True))
        return result

    monkeypatch.setattr(selectors, "orders_with_contents", spy)
    body = client.get("/channelManager").json()
    assert [wallet_count(order) for order in body["results"]] == [10]
    assert body["next"] is not None
    assert len(loaded) == 1  # not all four, with their 40 wallets
