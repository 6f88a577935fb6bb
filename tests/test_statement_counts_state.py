"""createOrder's statements, pinned on PostgreSQL: the order row is inserted already Scheduled
and both of its history rows (Submitted, then Scheduled) go in one INSERT
(channel_manager.orders.state), so a new order costs no UPDATE of itself. The queue is the
orders table: after commit one INSERT raises the issuance signal, and only the request that
raised it queues a run."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channel_manager.orders.models import Order, OrderStatus
from tests.payloads import line, order_body, visit_date

pytestmark = pytest.mark.django_db

# The API key (with its partner); inside the test's transaction a savepoint and its release;
# the order, its history rows, its wallet shells, its lines with their wallet links: one each.
CREATE_ORDER_STATEMENTS = 7
# After commit: the signal (and, for the request that raised it, the run's queue row).
KICK_STATEMENTS = 1


def three_lines() -> dict:
    day = visit_date()
    return order_body(items=[
        line("DAY-ADULT", 2, visitDate=day),
        line("FAMILY-GROUP", 4, visitDate=day),
        line("PARK-AND-SHOW", 1, visitDate=day, wallet={
            "componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]}),
    ])


def test_create_order_costs_seven_statements_and_one_more_after_commit(
    client, catalog, django_capture_on_commit_callbacks
):
    if connection.vendor != "postgresql":
        pytest.fail("the pinned count is PostgreSQL's")
    client.post("/channelManager", order_body(), format="json")  # warm the per-process catalog snapshot

    with CaptureQueriesContext(connection) as queries:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
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
    # After commit: the first order raises the signal and queues a run; the next one only finds
    # the signal raised.
    with CaptureQueriesContext(connection) as after_commit:
        for callback in callbacks:
            callback()
    kinds = [q["sql"].split(" ", 1)[0] for q in after_commit.captured_queries]
    assert kinds == ["SAVEPOINT", "INSERT", "INSERT", "RELEASE"], kinds
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/channelManager", three_lines(), format="json")
    with CaptureQueriesContext(connection) as after_commit:
        for callback in callbacks:
            callback()
    writes = [q["sql"] for q in after_commit.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(writes) == KICK_STATEMENTS, writes
