"""Concurrent issuance on PostgreSQL: capacity is never oversold and nothing deadlocks."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from catalog.models import Capacity, Item
from catalog.selectors import clear_venue_cache, venue_today
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from channel_manager.orders.services import LineInput, OrderInput, create_order
from tests.factories import ItemFactory, TimeSlotFactory
from wallets.models import Asset

pytestmark = pytest.mark.django_db(transaction=True)

_refs = itertools.count(1)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("row locks need PostgreSQL (make test provides it)")
    clear_venue_cache()


def submit(partner, *lines: LineInput) -> Order:
    return create_order(
        partner=partner,
        order_input=OrderInput(
            sell_to_order_reference=f"RACE-{next(_refs):06d}", lines=lines, payment_reference="PAY"
        ),
    )


def race(order_pks: list[int]) -> dict[int, str | None]:
    """Issue every order at once, one thread each; each thread closes its own connection."""
    barrier = threading.Barrier(len(order_pks))
    results: dict[int, str | None] = {}
    errors: list[BaseException] = []

    def run(pk: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[pk] = issue_order(order_pk=pk)
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(pk,)) for pk in order_pks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an issuance thread hung"
    assert not errors, errors
    return results


def test_thirty_orders_racing_for_ten_places_issue_exactly_ten(partner, catalog):
    cruise = ItemFactory(item_id="SUNSET-CRUISE", name="Sunset cruise", price=Decimal("30.00"))
    TimeSlotFactory(item=cruise, time=dt.time(18, 0), capacity=10)
    day = venue_today() + dt.timedelta(days=20)
    orders = [submit(partner, LineInput("SUNSET-CRUISE", 1, day, dt.time(18, 0))) for _ in range(30)]

    results = race([o.pk for o in orders])

    assert collections.Counter(results.values()) == {OrderStatus.ISSUED: 10, OrderStatus.ERROR: 20}
    statuses = collections.Counter(Order.objects.values_list("status", flat=True))
    assert statuses == {OrderStatus.ISSUED: 10, OrderStatus.ERROR: 20}
    row = Capacity.objects.get(item=cruise, visit_date=day, visit_time=dt.time(18, 0))
    assert (row.capacity, row.sold) == (10, 10)
    assert Asset.objects.count() == 10
    messages = set(Order.objects.filter(status=OrderStatus.ERROR).values_list("status_message", flat=True))
    assert messages == {f"items[0]: SUNSET-CRUISE is sold out on {day.isoformat()} at 18:00 (0 left, 1 requested)"}


def test_orders_claiming_several_rows_in_different_orders_neither_oversell_nor_deadlock(partner, catalog):
    Item.objects.filter(item_id="DAY-ADULT").update(capacity_per_day=25)
    catalog["SHOW-EVENING"].time_slots.filter(time=dt.time(19, 30)).update(capacity=15)
    day = venue_today() + dt.timedelta(days=21)
    t1930 = dt.time(19, 30)
    shapes = [
        (LineInput("PARK-AND-SHOW", 2, day, t1930),),
        (LineInput("SHOW-EVENING", 1, day, t1930), LineInput("DAY-ADULT", 2, day)),
        (LineInput("DAY-ADULT", 1, day), LineInput("PARK-AND-SHOW", 1, day, t1930)),
        (LineInput("FAMILY-GROUP", 3, day), LineInput("SHOW-EVENING", 2, day, t1930)),
    ]
    orders = [submit(partner, *shapes[i % len(shapes)]) for i in range(32)]

    results = race([o.pk for o in orders])

    assert set(results.values()) <= {OrderStatus.ISSUED, OrderStatus.ERROR}
    assert OrderStatus.ISSUED in results.values() and OrderStatus.ERROR in results.values()
    for row in Capacity.objects.all():
        admitted = Asset.objects.filter(
            item_id=row.item_id, visit_date=row.visit_date, visit_time=row.visit_time, asset_type="ticket",
            wallet__destroyed_at__isnull=True,
        ).aggregate(n=Sum("admits"))["n"] or 0
        assert row.sold == admitted
        assert row.capacity is None or row.sold <= row.capacity
    assert not Asset.objects.filter(wallet__order_link__order__status=OrderStatus.ERROR).exists()
