"""Batch issuance: the orders table is the queue, a run claims many due orders and issues them
with set-based statements, and every guarantee of issuing one order holds for each of them."""

from __future__ import annotations

import datetime as dt
import threading
from unittest import mock

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from catalog.models import Capacity, Item
from channel_manager.orders import issuance, scheduling, tasks
from channel_manager.orders.issuance import issue_due_orders
from channel_manager.orders.models import IssuanceSignal, Order, OrderStatus, OrderStatusChange
from notifications.models import Event
from tests.test_issuance import ln, submit
from wallets.models import Asset, Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def day(catalog) -> dt.date:
    from catalog.selectors import venue_today

    return venue_today() + dt.timedelta(days=30)


def assert_nothing_minted(order: Order) -> None:
    """The order holds no assets and no minted wallets (so no capacity: capacity is its tickets)."""
    assert not Asset.objects.filter(wallet__order_link__order=order).exists()
    assert not Wallet.objects.filter(order_link__order=order, minted_at__isnull=False).exists()


def statuses(orders) -> list[str]:
    by_pk = dict(Order.objects.values_list("pk", "status"))
    return [by_pk[order.pk] for order in orders]


def test_a_run_claims_the_due_orders_oldest_first_and_settles_each_once(partner, day):
    orders = [submit(partner, ln("DAY-ADULT", 2, day)) for _ in range(5)]
    assert issue_due_orders(limit=3) == {order.pk: OrderStatus.ISSUED for order in orders[:3]}
    assert statuses(orders) == ["Issued"] * 3 + ["Scheduled"] * 2
    assert issue_due_orders(limit=3) == {order.pk: OrderStatus.ISSUED for order in orders[3:]}
    assert issue_due_orders(limit=3) is None  # nothing due
    for order in orders:
        settled = OrderStatusChange.objects.filter(order=order, from_status="Processing")
        assert list(settled.values_list("to_status", flat=True)) == ["Issued"]
    assert Event.objects.count() == 5
    assert Asset.objects.count() == 10


def test_one_orders_error_does_not_fail_its_batch_neighbours(partner, day):
    ok_before = submit(partner, ln("DAY-ADULT", 1, day))
    wrong_slot = submit(partner, ln("SHOW-EVENING", 1, day, dt.time(11, 0)))
    draft = submit(partner, ln("DAY-ADULT", 1, day), payment=None)
    assert issue_due_orders() == {
        ok_before.pk: OrderStatus.ISSUED, wrong_slot.pk: OrderStatus.ERROR, draft.pk: OrderStatus.DRAFT,
    }
    failed = Order.objects.get(pk=wrong_slot.pk)
    assert failed.status_message == f"items[0]: SHOW-EVENING has no 11:00 slot on {day.isoformat()}"
    assert_nothing_minted(failed)
    assert Order.objects.get(pk=ok_before.pk).total_amount is not None


def test_capacity_in_a_batch_is_first_come_first_served_and_never_oversold(partner, day):
    item = Item.objects.get(item_id="DAY-ADULT")
    Item.objects.filter(pk=item.pk).update(capacity_per_day=5)
    from catalog.selectors import clear_catalog_cache

    clear_catalog_cache()
    orders = [submit(partner, ln("DAY-ADULT", 2, day)) for _ in range(4)]  # 8 asked, 5 there
    settled = issue_due_orders()
    assert [settled[order.pk] for order in orders] == ["Issued", "Issued", "Error", "Error"]
    assert Capacity.objects.get(item=item, visit_date=day).sold == 4
    third = Order.objects.get(pk=orders[2].pk)
    assert third.status_message == f"items[0]: DAY-ADULT is sold out on {day.isoformat()} (1 left, 2 requested)"
    assert_nothing_minted(third)


def test_a_batch_that_fails_for_another_reason_retries_each_order_alone(partner, day):
    orders = [submit(partner, ln("DAY-ADULT", 1, day)) for _ in range(3)]
    poisoned = orders[1]
    real_mint = issuance._mint

    def mint_unless_poisoned(issued):
        if any(entry.order.pk == poisoned.pk for entry in issued):
            raise RuntimeError("a bug that only this order triggers")
        return real_mint(issued)

    with mock.patch.object(issuance, "_mint", side_effect=mint_unless_poisoned):
        settled = issue_due_orders()
    assert settled == {orders[0].pk: OrderStatus.ISSUED, orders[2].pk: OrderStatus.ISSUED}
    # The poisoned order is left Processing with nothing held: the sweeper retries it, counting.
    stuck = Order.objects.get(pk=poisoned.pk)
    assert (stuck.status, stuck.issuance_attempts) == (OrderStatus.PROCESSING, 1)
    assert_nothing_minted(stuck)


def test_a_batch_costs_the_same_statements_whatever_its_size(partner, day):
    if connection.vendor != "postgresql":
        pytest.fail("the counts are PostgreSQL's (SQLite splits large INSERTs)")
    def run(count: int) -> int:
        for _ in range(count):
            submit(partner, ln("DAY-ADULT", 2, day), ln("FAMILY-GROUP", 3, day), ln("PARK-AND-SHOW", 1, day,
                                                                                     dt.time(19, 30)))
        with CaptureQueriesContext(connection) as queries:
            assert len(issue_due_orders(limit=count)) == count
        return len(queries.captured_queries)

    run(1)  # warm the catalog snapshot
    five, twenty = run(5), run(20)
    assert five == twenty, "a batch's statements must not grow with its orders"
    assert twenty / 20 < 2, f"{twenty} statements for 20 orders"


# A batch of 3-line orders on PostgreSQL, each with its event: claim (5, savepoints included),
# then lock, lines, shells, the catalog (5), capacity (4), mint (2), prices, settle (2), the
# events' order bodies (4) and the events (2), and the savepoints: 29 whatever the batch size.
BATCH_STATEMENTS = 29


def test_a_batch_of_twenty_orders_is_pinned_at_its_statements(partner, day):
    if connection.vendor != "postgresql":
        pytest.fail("the pinned count is PostgreSQL's")
    for _ in range(21):
        submit(partner, ln("DAY-ADULT", 2, day), ln("FAMILY-GROUP", 3, day), ln("PARK-AND-SHOW", 1, day,
                                                                                 dt.time(19, 30)))
    issue_due_orders(limit=1)  # warm the catalog snapshot
    with CaptureQueriesContext(connection) as queries:
        assert len(issue_due_orders(limit=20)) == 20
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) <= BATCH_STATEMENTS, "\n".join(s[:100] for s in statements)


def test_the_run_lowers_the_signal_and_issues_until_nothing_is_due(partner, day, settings):
    settings.ISSUANCE_BATCH_SIZE = 2
    orders = [submit(partner, ln("DAY-ADULT", 1, day)) for _ in range(5)]
    IssuanceSignal.objects.create(raised_at=dt.datetime.now(dt.UTC))
    assert tasks.issue_due_orders_task() == 5
    assert statuses(orders) == ["Issued"] * 5
    assert not IssuanceSignal.objects.exists()


def test_a_run_past_its_time_queues_its_successor(partner, day, settings):
    settings.ISSUANCE_BATCH_SIZE = 1
    settings.ISSUANCE_RUN_SECONDS = 0
    orders = [submit(partner, ln("DAY-ADULT", 1, day)) for _ in range(3)]
    OrmQ.objects.all().delete()
    assert tasks.issue_due_orders_task() == 1
    assert statuses(orders) == ["Issued", "Scheduled", "Scheduled"]
    (successor,) = OrmQ.objects.all()
    assert successor.func() == scheduling.ISSUE_DUE_TASK


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_skip_the_orders_another_run_holds(partner, catalog):
    if connection.vendor != "postgresql":
        pytest.fail("SKIP LOCKED is PostgreSQL's (SQLite serialises writers instead)")
    from catalog.selectors import venue_today

    day = venue_today() + dt.timedelta(days=30)
    orders = [submit(partner, ln("DAY-ADULT", 1, day)) for _ in range(4)]
    held, released = threading.Event(), threading.Event()

    def hold_the_oldest():
        try:
            with transaction.atomic():
                Order.objects.select_for_update().filter(pk=orders[0].pk).get()
                held.set()
                released.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_oldest)
    holder.start()
    try:
        assert held.wait(10)
        settled = issue_due_orders()  # does not wait for the held row
    finally:
        released.set()
        holder.join()
    assert set(settled) == {order.pk for order in orders[1:]}
    assert issue_due_orders() == {orders[0].pk: OrderStatus.ISSUED}


def test_a_signal_whose_run_was_lost_is_raised_again_after_a_while(partner, day, settings):
    settings.ISSUANCE_SIGNAL_STALE_SECONDS = 5
    IssuanceSignal.objects.create(raised_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2))
    with mock.patch("channel_manager.orders.scheduling.async_task") as async_task:
        assert not scheduling.kick()  # a run was asked for just now: no second one
        IssuanceSignal.objects.update(raised_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=6))
        assert scheduling.kick()  # that run never came (its task was lost): ask again
        assert not scheduling.kick()
    assert [c.args[0] for c in async_task.call_args_list] == [scheduling.ISSUE_DUE_TASK]
