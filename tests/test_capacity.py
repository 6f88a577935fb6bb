"""Capacity rows: reserve and release, all or nothing, never oversold, constant query count."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from catalog.models import Capacity
from catalog.selectors import venue_today
from catalog.services import CapacityClaim, CapacityExceeded, release_capacity, reserve_capacity
from tests.factories import CapacityFactory, ItemFactory, TimeSlotFactory

T1930 = dt.time(19, 30)
T2100 = dt.time(21, 0)


@pytest.fixture
def day() -> dt.date:
    return venue_today() + dt.timedelta(days=10)


def reserve(*claims: CapacityClaim) -> None:
    with transaction.atomic():
        reserve_capacity(claims=claims)


def release(*claims: CapacityClaim) -> None:
    with transaction.atomic():
        release_capacity(claims=claims)


def row(item, visit_date, visit_time=None) -> Capacity:
    return Capacity.objects.get(item=item, visit_date=visit_date, visit_time=visit_time)


# ---------------------------------------------------------------------------------------------
# reserve
# ---------------------------------------------------------------------------------------------


def test_first_reservation_makes_the_row_with_the_items_capacity_per_day(catalog, day):
    reserve(CapacityClaim(catalog["DAY-ADULT"].pk, day, None, 3))

    r = row(catalog["DAY-ADULT"], day)
    assert (r.capacity, r.sold) == (5000, 3)


def test_first_reservation_of_a_timed_item_takes_the_slots_capacity(catalog, day):
    show = catalog["SHOW-EVENING"]
    show.time_slots.filter(time=T2100).update(capacity=50)

    reserve(CapacityClaim(show.pk, day, T1930, 2), CapacityClaim(show.pk, day, T2100, 1))

    assert (row(show, day, T1930).capacity, row(show, day, T1930).sold) == (200, 2)
    assert (row(show, day, T2100).capacity, row(show, day, T2100).sold) == (50, 1)


def test_reservation_adds_to_an_existing_row(catalog, day):
    CapacityFactory(item=catalog["DAY-ADULT"], visit_date=day, capacity=10, sold=4)

    reserve(CapacityClaim(catalog["DAY-ADULT"].pk, day, None, 5))

    assert row(catalog["DAY-ADULT"], day).sold == 9


def test_claims_on_the_same_row_add_up(catalog, day):
    item = catalog["DAY-ADULT"]
    reserve(CapacityClaim(item.pk, day, None, 2), CapacityClaim(item.pk, day, None, 3))

    assert row(item, day).sold == 5
    assert Capacity.objects.count() == 1


def test_dates_are_counted_apart(catalog, day):
    item = catalog["DAY-ADULT"]
    reserve(CapacityClaim(item.pk, day, None, 2), CapacityClaim(item.pk, day + dt.timedelta(1), None, 7))

    assert row(item, day).sold == 2
    assert row(item, day + dt.timedelta(1)).sold == 7


def test_exactly_the_capacity_left_can_be_reserved(catalog, day):
    CapacityFactory(item=catalog["DAY-ADULT"], visit_date=day, capacity=10, sold=4)

    reserve(CapacityClaim(catalog["DAY-ADULT"].pk, day, None, 6))

    assert row(catalog["DAY-ADULT"], day).sold == 10


def test_exceeding_names_the_first_failing_claim_in_the_callers_order(catalog, day):
    adult, show = catalog["DAY-ADULT"], catalog["SHOW-EVENING"]
    CapacityFactory(item=adult, visit_date=day, capacity=10, sold=8)
    CapacityFactory(item=show, visit_date=day, visit_time=T1930, capacity=5, sold=5)
    ok = CapacityClaim(show.pk, day, T2100, 1)
    first_failing = CapacityClaim(show.pk, day, T1930, 1)
    also_failing = CapacityClaim(adult.pk, day, None, 3)

    with pytest.raises(CapacityExceeded) as exc_info:
        reserve(ok, first_failing, also_failing)

    exc = exc_info.value
    assert exc.claim == first_failing
    assert (exc.capacity, exc.remaining) == (5, 0)


def test_exceeding_changes_nothing(catalog, day):
    adult, show = catalog["DAY-ADULT"], catalog["SHOW-EVENING"]
    CapacityFactory(item=adult, visit_date=day, capacity=10, sold=8)

    with pytest.raises(CapacityExceeded):
        reserve(CapacityClaim(show.pk, day, T1930, 4), CapacityClaim(adult.pk, day, None, 3))

    assert row(adult, day).sold == 8
    assert not Capacity.objects.filter(item=show).exists()  # rolled back with the caller


def test_the_claim_that_tips_a_shared_row_over_is_named(catalog, day):
    item = catalog["DAY-ADULT"]
    CapacityFactory(item=item, visit_date=day, capacity=10, sold=0)
    first, second = CapacityClaim(item.pk, day, None, 6), CapacityClaim(item.pk, day, None, 5)

    with pytest.raises(CapacityExceeded) as exc_info:
        reserve(first, second)

    assert exc_info.value.claim is second
    assert (exc_info.value.capacity, exc_info.value.remaining) == (10, 4)
    assert row(item, day).sold == 0


def test_zero_capacity_is_sold_out(catalog, day):
    item = ItemFactory(item_id="CLOSED-DAY", capacity_per_day=0)

    with pytest.raises(CapacityExceeded) as exc_info:
        reserve(CapacityClaim(item.pk, day, None, 1))

    assert exc_info.value.remaining == 0


def test_freesale_is_always_available_and_still_counted(catalog, day):
    family = catalog["FAMILY-GROUP"]  # no capacityPerDay

    reserve(CapacityClaim(family.pk, day, None, 100_000))
    reserve(CapacityClaim(family.pk, day, None, 5))

    r = row(family, day)
    assert r.capacity is None
    assert r.sold == 100_005


def test_freesale_slot(catalog, day):
    slot = TimeSlotFactory(item=ItemFactory(item_id="FREE-TOUR"), time=dt.time(10, 0), capacity=None)

    reserve(CapacityClaim(slot.item.pk, day, slot.time, 999))

    assert row(slot.item, day, slot.time).capacity is None


@pytest.mark.parametrize(
    ("code", "visit_time", "quantity", "message"),
    [
        ("SHOW-EVENING", dt.time(20, 0), 1, "has no 20:00 slot"),
        ("SHOW-EVENING", None, 1, "is timed"),
        ("DAY-ADULT", T1930, 1, "is untimed"),
        ("DAY-ADULT", None, 0, "positive integer"),
        ("DAY-ADULT", None, -2, "positive integer"),
    ],
)
def test_invalid_claims_raise_value_error(catalog, day, code, visit_time, quantity, message):
    with pytest.raises(ValueError, match=message):
        reserve(CapacityClaim(catalog[code].pk, day, visit_time, quantity))

    assert not Capacity.objects.exists()


def test_claim_for_an_unknown_item_raises_value_error(catalog, day):
    with pytest.raises(ValueError, match="no item"):
        reserve(CapacityClaim(999_999, day, None, 1))


def test_no_claims_is_a_no_op(catalog, django_assert_num_queries):
    with transaction.atomic(), django_assert_num_queries(0):
        reserve_capacity(claims=[])
        release_capacity(claims=[])


@pytest.mark.django_db(transaction=True)
def test_reserve_and_release_outside_a_transaction_are_refused():
    item = ItemFactory(item_id="AUTOCOMMIT", capacity_per_day=5)
    claim = CapacityClaim(item.pk, dt.date.today(), None, 1)

    with pytest.raises(RuntimeError, match="transaction.atomic"):
        reserve_capacity(claims=[claim])
    with pytest.raises(RuntimeError, match="transaction.atomic"):
        release_capacity(claims=[claim])
    assert not Capacity.objects.exists()


# ---------------------------------------------------------------------------------------------
# release
# ---------------------------------------------------------------------------------------------


def test_release_gives_places_back(catalog, day):
    item = catalog["DAY-ADULT"]
    reserve(CapacityClaim(item.pk, day, None, 5))

    release(CapacityClaim(item.pk, day, None, 2), CapacityClaim(item.pk, day, None, 1))

    assert row(item, day).sold == 2


def test_release_never_goes_below_zero(catalog, day):
    show = catalog["SHOW-EVENING"]
    CapacityFactory(item=show, visit_date=day, visit_time=T1930, capacity=200, sold=3)

    release(CapacityClaim(show.pk, day, T1930, 10))

    assert row(show, day, T1930).sold == 0


def test_release_where_nothing_was_reserved_does_nothing(catalog, day):
    release(CapacityClaim(catalog["DAY-ADULT"].pk, day, None, 1))

    assert not Capacity.objects.exists()


def test_released_places_can_be_sold_again(catalog, day):
    item = catalog["DAY-ADULT"]
    CapacityFactory(item=item, visit_date=day, capacity=3, sold=3)

    release(CapacityClaim(item.pk, day, None, 1))
    reserve(CapacityClaim(item.pk, day, None, 1))

    assert row(item, day).sold == 3


# ---------------------------------------------------------------------------------------------
# queries do not grow with the claims
# ---------------------------------------------------------------------------------------------


def _claims(catalog, day: dt.date, n: int) -> list[CapacityClaim]:
    """n claims on n different rows, untimed and timed."""
    adult, show = catalog["DAY-ADULT"], catalog["SHOW-EVENING"]
    claims = []
    for i in range(n):
        visit_date = day + dt.timedelta(days=i // 3)
        if i % 3 == 0:
            claims.append(CapacityClaim(adult.pk, visit_date, None, 1))
        else:
            claims.append(CapacityClaim(show.pk, visit_date, T1930 if i % 3 == 1 else T2100, 2))
    return claims


@pytest.mark.parametrize("n", [1, 50])
def test_reserve_takes_four_queries_for_any_number_of_claims(catalog, day, n, django_assert_max_num_queries):
    claims = _claims(catalog, day, n)
    with transaction.atomic():
        with django_assert_max_num_queries(4):
            reserve_capacity(claims=claims)  # rows made here
        with django_assert_max_num_queries(4):
            reserve_capacity(claims=claims)  # rows exist

    assert Capacity.objects.count() == n
    assert sum(Capacity.objects.values_list("sold", flat=True)) == 2 * sum(c.quantity for c in claims)


@pytest.mark.parametrize("n", [1, 50])
def test_release_takes_two_queries_for_any_number_of_claims(catalog, day, n, django_assert_max_num_queries):
    claims = _claims(catalog, day, n)
    reserve(*claims)
    with transaction.atomic(), django_assert_max_num_queries(2):
        release_capacity(claims=claims)

    assert set(Capacity.objects.values_list("sold", flat=True)) == {0}


# ---------------------------------------------------------------------------------------------
# concurrency (PostgreSQL: real row locks between connections)
# ---------------------------------------------------------------------------------------------


def _run_in_threads(n: int, work) -> list[str]:
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            try:
                with transaction.atomic():
                    work(i)
                outcome = "ok"
            except CapacityExceeded:
                outcome = "exceeded"
            except Exception as exc:  # a deadlock or an integrity error fails the test
                outcome = f"error: {exc!r}"
            with lock:
                outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


@pytest.fixture
def needs_postgres_fixture():
    if connection.vendor != "postgresql":
        pytest.fail("row locks between connections need PostgreSQL (make test provides it)")


needs_postgres = pytest.mark.usefixtures("needs_postgres_fixture")


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("row_exists", [True, False], ids=["existing-row", "row-made-by-the-race"])
def test_concurrent_reservations_never_oversell(row_exists):
    item = ItemFactory(item_id="RUSH", capacity_per_day=10)
    day = dt.date.today() + dt.timedelta(days=5)
    if row_exists:
        CapacityFactory(item=item, visit_date=day, capacity=10, sold=0)
    claim = CapacityClaim(item.pk, day, None, 1)

    outcomes = _run_in_threads(20, lambda i: reserve_capacity(claims=[claim]))

    assert sorted(outcomes) == ["exceeded"] * 10 + ["ok"] * 10
    r = Capacity.objects.get(item=item, visit_date=day)
    assert (r.capacity, r.sold) == (10, 10)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_in_opposite_orders_do_not_deadlock():
    a = ItemFactory(item_id="A", capacity_per_day=1000)
    b = ItemFactory(item_id="B", capacity_per_day=1000)
    day = dt.date.today() + dt.timedelta(days=5)
    forward = [CapacityClaim(a.pk, day, None, 1), CapacityClaim(b.pk, day, None, 1)]

    def work(i: int) -> None:
        reserve_capacity(claims=forward if i % 2 else list(reversed(forward)))
        release_capacity(claims=list(reversed(forward)) if i % 2 else forward)
        reserve_capacity(claims=forward)

    outcomes = _run_in_threads(16, work)

    assert outcomes == ["ok"] * 16
    assert set(Capacity.objects.values_list("sold", flat=True)) == {16}
