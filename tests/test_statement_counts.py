"""Statement counts of the hot paths, pinned at what they cost before wallets stood on their own
(measured on PostgreSQL, savepoints included: createOrder 10 with warm catalog caches, issuance
31, getOrder 5), for the contract's example order: 3 lines, 4 wallets. An N+1, or a statement
added on the way, fails here instead of costing every partner call."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from channel_manager.orders.tasks import issue_order_task
from tests.payloads import contract_example_body, line, order_body

CREATE_ORDER_STATEMENTS = 10
ISSUANCE_STATEMENTS = 31
GET_ORDER_STATEMENTS = 5


def _statements(ctx: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"][:160] for q in ctx.captured_queries)


def _create(client, body: dict) -> dict:
    response = client.post("/channelManager", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def _warm_caches(client) -> None:
    """The catalog and venue caches are per process and warm in production."""
    _create(client, order_body(items=[line()]))


def test_create_order_costs_at_most_its_pinned_statements(client, catalog):
    _warm_caches(client)
    with CaptureQueriesContext(connection) as ctx:
        body = _create(client, contract_example_body())
    assert sum(len(i["wallets"]) for i in body["items"]) == 4
    assert len(ctx.captured_queries) <= CREATE_ORDER_STATEMENTS, _statements(ctx)


def test_create_order_of_six_wallets_costs_the_same(client, catalog):
    _warm_caches(client)
    body = contract_example_body()
    body["items"][0]["quantity"] = 4
    body["items"][0]["wallet"]["externalReferenceNumbers"] = ["ACME-T-1", "ACME-T-2", "ACME-T-3", "ACME-T-4"]
    with CaptureQueriesContext(connection) as ctx:
        created = _create(client, body)
    assert sum(len(i["wallets"]) for i in created["items"]) == 6
    assert len(ctx.captured_queries) <= CREATE_ORDER_STATEMENTS, _statements(ctx)


def test_issuance_task_costs_at_most_its_pinned_statements(client, catalog):
    created = _create(client, contract_example_body())
    pk = Order.objects.get(order_id=created["orderId"]).pk
    with CaptureQueriesContext(connection) as ctx:
        assert issue_order_task(pk) == OrderStatus.ISSUED
    assert len(ctx.captured_queries) <= ISSUANCE_STATEMENTS, _statements(ctx)


def test_issuance_of_a_draft_costs_the_same(client, catalog):
    created = _create(client, contract_example_body(paymentReference=None))
    pk = Order.objects.get(order_id=created["orderId"]).pk
    with CaptureQueriesContext(connection) as ctx:
        assert issue_order(order_pk=pk) == OrderStatus.DRAFT
    assert len(ctx.captured_queries) <= ISSUANCE_STATEMENTS, _statements(ctx)


def test_get_order_costs_at_most_its_pinned_statements(client, catalog):
    created = _create(client, contract_example_body())
    issue_order(order_pk=Order.objects.get(order_id=created["orderId"]).pk)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/channelManager/{created['orderId']}")
    assert response.status_code == 200
    assert sum(len(i["wallets"]) for i in response.json()["items"]) == 4
    assert len(ctx.captured_queries) <= GET_ORDER_STATEMENTS, _statements(ctx)
