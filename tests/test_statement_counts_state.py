"""createOrder's statements, pinned on PostgreSQL: the order row is inserted already Scheduled
and both of its history rows (Submitted, then Scheduled) go in one INSERT
(channel_manager.orders.state), so a new order costs no UPDATE of itself."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channel_manager.orders.models import Order, OrderStatus
from tests.payloads import line, order_body, visit_date

pytestmark = pytest.mark.django_db

# The API key (with its partner); inside the test's transaction a savepoint and its release;
# the order, its history rows, the queue row, its lines, its wallet shells: one statement each.
CREATE_ORDER_STATEMENTS = 8


def three_lines() -> dict:
    day = visit_date()
    return order_body(items=[
        line("DAY-ADULT", 2, visitDate=day),
        line("FAMILY-GROUP", 4, visitDate=day),
        line("PARK-AND-SHOW", 1, visitDate=day, wallet={
            "componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]}),
    ])


def test_create_order_costs_eight_statements(client, catalog):
    if connection.vendor != "postgresql":
        pytest.fail("the pinned count is PostgreSQL's")
    client.post("/channelManager", order_body(), format="json")  # warm the per-process catalog snapshot

    with CaptureQueriesContext(connection) as queries:
        response = client.post("/channelManager", three_lines(), format="json")

    assert response.status_code == 202, response.content
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == CREATE_ORDER_STATEMENTS, "\n".join(s[:120] for s in statements)
    assert not [s for s in statements if s.startswith('UPDATE "channel_manager_order"')]
    # Answered as accepted; queued in the same transaction.
    assert response.json()["status"] == "Submitted"
    order = Order.objects.get(order_id=response.json()["orderId"])
    assert order.status == OrderStatus.SCHEDULED
    assert list(order.status_changes.order_by("at", "id").values_list("from_status", "to_status")) == [
        ("", "Submitted"), ("Submitted", "Scheduled"),
    ]
