"""Issuance: minting each kind of wallet, pricing, settling, every Error reason, idempotency,
the event outbox, the sweeper, and a query count that does not grow with the wallets."""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import itertools
import re
import time
from decimal import Decimal
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.db import connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from catalog.models import Capacity, Item, ItemType
from catalog.selectors import clear_venue_cache, venue_today
from catalog.services import CapacityClaim, reserve_capacity
from channel_manager.orders import issuance, scheduling, tasks
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import IssuanceSignal, Order, OrderLine, OrderStatus, OrderStatusChange
from channel_manager.orders.selectors import order_wallet_ids, unminted_shells
from channel_manager.orders.services import ComponentVisit, LineInput, OrderInput, create_order
from notifications.models import Event
from tests.factories import ItemFactory, PackageCouponFactory, TimeSlotFactory
from wallets import services as wallet_services
from wallets.codes import CODE_ALPHABET
from wallets.models import Asset, Wallet, WalletValidity

pytestmark = pytest.mark.django_db

T1930 = dt.time(19, 30)
T2100 = dt.time(21, 0)
_refs = itertools.count(1)


@pytest.fixture
def day() -> dt.date:
    return venue_today() + dt.timedelta(days=30)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def ln(code: str, quantity: int = 1, visit_date: dt.date | None = None, visit_time=None, *,
       refs=None, schedule=()) -> LineInput:
    return LineInput(
        item_code=code,
        quantity=quantity,
        visit_date=visit_date or venue_today() + dt.timedelta(days=30),
        visit_time=visit_time,
        external_reference_numbers=tuple(refs) if refs is not None else None,
        component_schedule=tuple(schedule),
    )


def submit(partner, *lines: LineInput, payment: str | None = "PAY-1") -> Order:
    return create_order(
        partner=partner,
        order_input=OrderInput(
            sell_to_order_reference=f"ISS-{next(_refs):06d}", lines=tuple(lines),
            payment_reference=payment,
        ),
    )


def issue(order: Order) -> Order:
    issue_order(order_pk=order.pk)
    return Order.objects.get(pk=order.pk)


def wallets_of(order: Order) -> list[Wallet]:
    return list(
        Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=True)
        .order_by("order_link__line__line_number", "position")
        .prefetch_related("assets")
    )


def assets_of(wallet: Wallet) -> list[Asset]:
    return sorted(wallet.assets.all(), key=lambda a: a.position)


def sold(item: Item, visit_date: dt.date, visit_time: dt.time | None = None) -> int:
    row = Capacity.objects.filter(item=item, visit_date=visit_date, visit_time=visit_time).first()
    return row.sold if row else 0


def total_sold() -> int:
    return Capacity.objects.aggregate(total=Sum("sold"))["total"] or 0


def settle_rows(order: Order) -> list[OrderStatusChange]:
    return list(
        OrderStatusChange.objects.filter(
            order=order, to_status__in=[OrderStatus.DRAFT, OrderStatus.ISSUED, OrderStatus.ERROR]
        )
    )


def assert_nothing_held(order: Order) -> None:
    assert total_sold() == 0
    assert not Asset.objects.filter(wallet__order_link__order=order).exists()
    assert not Wallet.objects.filter(order_link__order=order, minted_at__isnull=False).exists()
    assert not Wallet.objects.filter(order_link__order=order, manifest_token__isnull=False).exists()


# ---------------------------------------------------------------------------------------------
# what each kind of line mints
# ---------------------------------------------------------------------------------------------


def test_ticket_line_mints_one_ticket_per_wallet_admitting_one(partner, catalog, day):
    order = issue(submit(partner, ln("DAY-ADULT", 3, day)))

    wallets = wallets_of(order)
    assert len(wallets) == 3
    for wallet in wallets:
        (ticket,) = assets_of(wallet)
        assert (ticket.asset_type, ticket.item_code, ticket.name) == ("ticket", "DAY-ADULT", "Day ticket, adult")
        assert (ticket.visit_date, ticket.visit_time, ticket.admits) == (day, None, 1)
        assert ticket.item_id == catalog["DAY-ADULT"].pk
    assert sold(catalog["DAY-ADULT"], day) == 3


def test_group_ticket_mints_one_ticket_admitting_the_whole_group(partner, catalog, day):
    order = issue(submit(partner, ln("FAMILY-GROUP", 4, day)))

    (wallet,) = wallets_of(order)
    (ticket,) = assets_of(wallet)
    assert (ticket.asset_type, ticket.item_code, ticket.admits) == ("ticket", "FAMILY-GROUP", 4)
    assert sold(catalog["FAMILY-GROUP"], day) == 4


def test_package_wallet_holds_a_ticket_per_component_and_its_coupons(partner, catalog, day):
    PackageCouponFactory(package=catalog["PARK-AND-SHOW"], code="PARK3", description="Parking", valid_days=3,
                         position=1)
    order = issue(submit(partner, ln("PARK-AND-SHOW", 2, day, T1930)))

    wallets = wallets_of(order)
    assert len(wallets) == 2
    for wallet in wallets:
        park, show, fnb, parking = assets_of(wallet)
        assert (park.asset_type, park.item_code, park.name, park.admits) == ("ticket", "DAY-ADULT",
                                                                            "Day ticket, adult", 1)
        assert (park.visit_date, park.visit_time) == (day, None)  # untimed: the line's time is the show's
        assert (show.asset_type, show.item_code, show.name) == ("ticket", "SHOW-EVENING", "Evening show")
        assert (show.visit_date, show.visit_time, show.admits) == (day, T1930, 1)
        assert (fnb.asset_type, fnb.item_code, fnb.name) == ("coupon", "PARK-AND-SHOW", "Park and show")
        assert (fnb.description, fnb.valid_until, fnb.admits) == ("10% off food and drinks", day, None)
        assert (parking.description, parking.valid_until) == ("Parking", day + dt.timedelta(days=2))
    assert sold(catalog["DAY-ADULT"], day) == 2
    assert sold(catalog["SHOW-EVENING"], day, T1930) == 2
    assert sold(catalog["PARK-AND-SHOW"], day) == 0  # the package's capacity is its components'


def test_component_schedule_sets_each_components_date_and_time(partner, catalog, day):
    next_day = day + dt.timedelta(days=1)
    order = issue(submit(partner, ln(
        "PARK-AND-SHOW", 1, day,
        schedule=[ComponentVisit("SHOW-EVENING", next_day, T2100)],
    )))

    assert order.status == OrderStatus.ISSUED, order.status_message
    park, show, _coupon = assets_of(wallets_of(order)[0])
    assert (park.visit_date, park.visit_time) == (day, None)
    assert (show.visit_date, show.visit_time) == (next_day, T2100)
    assert sold(catalog["SHOW-EVENING"], next_day, T2100) == 1
    assert sold(catalog["SHOW-EVENING"], day, T2100) == 0


def test_partner_references_become_wallet_references_and_others_get_system_ones(partner, catalog, day):
    order = issue(submit(
        partner,
        ln("DAY-ADULT", 2, day, refs=["ACME-T-1", "ACME-T-2"]),
        ln("FAMILY-GROUP", 2, day),
    ))

    first, second, group = wallets_of(order)
    assert (first.wallet_reference_number, first.external_reference_number) == ("ACME-T-1", "ACME-T-1")
    assert (second.wallet_reference_number, second.external_reference_number) == ("ACME-T-2", "ACME-T-2")
    assert group.external_reference_number is None
    assert re.fullmatch(f"W[{CODE_ALPHABET}]{{11}}", group.wallet_reference_number)


def test_asset_numbers_are_unique_and_from_the_unambiguous_alphabet(partner, catalog, day):
    issue(submit(partner, ln("PARK-AND-SHOW", 50, day, T1930), ln("DAY-ADULT", 50, day)))

    numbers = list(Asset.objects.values_list("asset_number", flat=True))
    assert len(numbers) == 50 * 3 + 50
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(f"[{CODE_ALPHABET}]{{16}}", n) for n in numbers)
    assert not set("01IO").intersection(CODE_ALPHABET)


def test_manifest_tokens_are_unguessable_and_give_a_manifest_url(partner, catalog, day):
    order = issue(submit(partner, ln("DAY-ADULT", 5, day)))

    tokens = [w.manifest_token for w in wallets_of(order)]
    assert len(set(tokens)) == 5
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
    assert all(w.minted_at is not None for w in wallets_of(order))
    event = Event.objects.get(subject_id=str(order.order_id))
    urls = [w["manifestUrl"] for w in event.payload["order"]["items"][0]["wallets"]]
    assert all(url and url.endswith(token) for url, token in zip(urls, tokens, strict=True))


# ---------------------------------------------------------------------------------------------
# pricing and settling
# ---------------------------------------------------------------------------------------------


def test_prices_tickets_and_packages_per_wallet_and_group_tickets_per_group(partner, catalog, day):
    order = issue(submit(
        partner, ln("DAY-ADULT", 2, day), ln("FAMILY-GROUP", 4, day), ln("PARK-AND-SHOW", 3, day, T1930)
    ))

    lines = list(OrderLine.objects.filter(order=order).order_by("line_number"))
    assert [(x.unit_price, x.line_total) for x in lines] == [
        (Decimal("49.50"), Decimal("99.00")),
        (Decimal("150.00"), Decimal("150.00")),
        (Decimal("65.00"), Decimal("195.00")),
    ]
    assert order.total_amount == Decimal("444.00")


def test_with_a_payment_reference_the_order_is_issued(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 1, day), payment="PAY-9")

    assert issue_order(order_pk=order.pk) == OrderStatus.ISSUED
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED
    assert order.issued_at is not None and order.status_message is None


def test_without_a_payment_reference_the_order_is_a_draft(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 1, day), payment=None)

    assert issue_order(order_pk=order.pk) == OrderStatus.DRAFT
    order.refresh_from_db()
    assert order.status == OrderStatus.DRAFT
    assert order.issued_at is None
    assert Asset.objects.filter(wallet__order_link__order=order).count() == 1  # minted all the same


def test_history_shows_processing_then_the_settled_status_by_the_worker(partner, catalog, day):
    order = issue(submit(partner, ln("DAY-ADULT", 1, day)))

    rows = list(OrderStatusChange.objects.filter(order=order).order_by("at", "id"))
    assert [(r.from_status, r.to_status) for r in rows] == [
        ("", "Submitted"), ("Submitted", "Scheduled"), ("Scheduled", "Processing"), ("Processing", "Issued"),
    ]
    assert [r.actor for r in rows[2:]] == ["worker", "worker"]
    assert order.issuance_attempts == 1


def test_a_scheduled_order_is_issued_too(partner, catalog, day, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        order = submit(partner, ln("DAY-ADULT", 1, day))
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED
    assert OrmQ.objects.count() == 1  # scheduling.submit queued the task

    assert issue(order).status == OrderStatus.ISSUED


# ---------------------------------------------------------------------------------------------
# Error: the first failure, in words a partner can act on, with nothing held
# ---------------------------------------------------------------------------------------------


def _error_cases(day: dt.date):
    d = day.isoformat()
    return {
        "inactive": (
            lambda c: Item.objects.filter(pk=c["DAY-ADULT"].pk).update(active=False),
            [ln("DAY-ADULT", 1, day)],
            "items[0]: DAY-ADULT is not active",
        ),
        "before the sale window": (
            lambda c: Item.objects.filter(pk=c["FAMILY-GROUP"].pk).update(
                sale_from=day + dt.timedelta(days=1), sale_until=day + dt.timedelta(days=400)),
            [ln("DAY-ADULT", 1, day), ln("FAMILY-GROUP", 2, day)],
            f"items[1]: FAMILY-GROUP is not on sale for {d} (on sale "
            f"{(day + dt.timedelta(days=1)).isoformat()} to {(day + dt.timedelta(days=400)).isoformat()})",
        ),
        "after the sale window": (
            lambda c: Item.objects.filter(pk=c["FAMILY-GROUP"].pk).update(sale_until=day - dt.timedelta(days=1)),
            [ln("FAMILY-GROUP", 2, day)],
            f"items[0]: FAMILY-GROUP is not on sale for {d} (on sale until "
            f"{(day - dt.timedelta(days=1)).isoformat()})",
        ),
        "timed without a time": (
            lambda c: None,
            [ln("SHOW-EVENING", 1, day)],
            f"items[0]: SHOW-EVENING needs a visitTime on {d} (slots: 19:30, 21:00)",
        ),
        "no such slot": (
            lambda c: None,
            [ln("DAY-ADULT", 1, day), ln("DAY-ADULT", 1, day), ln("SHOW-EVENING", 1, day, dt.time(20, 0))],
            f"items[2]: SHOW-EVENING has no 20:00 slot on {d}",
        ),
        "untimed with a time": (
            lambda c: None,
            [ln("DAY-ADULT", 1, day, dt.time(10, 0))],
            "items[0]: DAY-ADULT has no time slots; visitTime must be null (got 10:00)",
        ),
        "group too large": (
            lambda c: Item.objects.filter(pk=c["FAMILY-GROUP"].pk).update(max_group_size=3),
            [ln("FAMILY-GROUP", 4, day)],
            "items[0]: FAMILY-GROUP admits at most 3 people (4 requested)",
        ),
        "sold out": (
            lambda c: Item.objects.filter(pk=c["DAY-ADULT"].pk).update(capacity_per_day=5),
            [ln("DAY-ADULT", 3, day), ln("DAY-ADULT", 4, day)],
            f"items[1]: DAY-ADULT is sold out on {d} (2 left, 4 requested)",
        ),
        "slot sold out": (
            lambda c: c["SHOW-EVENING"].time_slots.filter(time=T1930).update(capacity=0),
            [ln("SHOW-EVENING", 1, day, T1930)],
            f"items[0]: SHOW-EVENING is sold out on {d} at 19:30 (0 left, 1 requested)",
        ),
        "package component slot sold out": (
            lambda c: c["SHOW-EVENING"].time_slots.filter(time=T1930).update(capacity=1),
            [ln("PARK-AND-SHOW", 2, day, T1930)],
            f"items[0]: SHOW-EVENING is sold out on {d} at 19:30 (1 left, 2 requested)",
        ),
        "package not on sale": (
            lambda c: Item.objects.filter(pk=c["PARK-AND-SHOW"].pk).update(sale_from=day + dt.timedelta(days=5)),
            [ln("PARK-AND-SHOW", 1, day, T1930)],
            f"items[0]: PARK-AND-SHOW is not on sale for {d} (on sale from "
            f"{(day + dt.timedelta(days=5)).isoformat()})",
        ),
        "package component not on sale on its scheduled date": (
            lambda c: Item.objects.filter(pk=c["SHOW-EVENING"].pk).update(sale_until=day),
            [ln("PARK-AND-SHOW", 1, day,
                schedule=[ComponentVisit("SHOW-EVENING", day + dt.timedelta(days=1), T1930)])],
            f"items[0]: SHOW-EVENING is not on sale for {(day + dt.timedelta(days=1)).isoformat()} "
            f"(on sale until {d})",
        ),
        "package component scheduled at a slot it lacks": (
            lambda c: None,
            [ln("DAY-ADULT", 1, day), ln("FAMILY-GROUP", 2, day),
             ln("PARK-AND-SHOW", 1, day, schedule=[ComponentVisit("SHOW-EVENING", day, dt.time(19, 45))])],
            f"items[2]: SHOW-EVENING has no 19:45 slot on {d}",
        ),
        "package timed component without a time": (
            lambda c: None,
            [ln("PARK-AND-SHOW", 1, day)],
            f"items[0]: SHOW-EVENING needs a visitTime on {d} (slots: 19:30, 21:00); "
            "schedule it in wallet.componentSchedule",
        ),
        "package component inactive": (
            lambda c: Item.objects.filter(pk=c["SHOW-EVENING"].pk).update(active=False),
            [ln("PARK-AND-SHOW", 1, day, T1930)],
            "items[0]: SHOW-EVENING is not active",
        ),
    }


ERROR_CASES = list(_error_cases(dt.date(2030, 1, 1)))


@pytest.mark.parametrize("case", ERROR_CASES)
def test_the_first_failure_settles_the_order_in_error_with_nothing_held(partner, catalog, day, case):
    prepare, lines, message = _error_cases(day)[case]
    refs_line = ln("DAY-ADULT", 1, day, refs=["KEEP-ME"])
    order = submit(partner, *lines, refs_line)
    prepare(catalog)

    assert issue_order(order_pk=order.pk) == OrderStatus.ERROR
    order.refresh_from_db()
    assert order.status == OrderStatus.ERROR
    assert order.status_message == message
    assert order.total_amount is None
    assert_nothing_held(order)
    # The shells stay, unminted, with the partner's references.
    shells = 1 + sum(1 if x.item_code == "FAMILY-GROUP" else x.quantity for x in lines)
    assert Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=True).count() == shells
    kept = Wallet.objects.get(order_link__order=order, external_reference_number="KEEP-ME")
    assert kept.wallet_reference_number == "KEEP-ME"
    (row,) = settle_rows(order)
    assert (row.from_status, row.to_status, row.actor, row.message) == ("Processing", "Error", "worker", message)
    event = Event.objects.get(subject_id=str(order.order_id))
    assert event.payload["order"]["status"] == "Error"
    assert event.payload["order"]["statusMessage"] == message


def test_capacity_taken_by_other_orders_counts(partner, catalog, day):
    Item.objects.filter(pk=catalog["DAY-ADULT"].pk).update(capacity_per_day=4)
    first = issue(submit(partner, ln("DAY-ADULT", 3, day)))
    second = issue(submit(partner, ln("DAY-ADULT", 2, day)))

    assert first.status == OrderStatus.ISSUED
    assert second.status == OrderStatus.ERROR
    assert second.status_message == f"items[0]: DAY-ADULT is sold out on {day.isoformat()} (1 left, 2 requested)"
    assert sold(catalog["DAY-ADULT"], day) == 3


def test_a_visit_date_that_passed_before_issuance_is_an_error(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 1, day))
    later = timezone.now() + dt.timedelta(days=40)
    with mock.patch("django.utils.timezone.now", return_value=later):
        clear_venue_cache()
        issue_order(order_pk=order.pk)
    order.refresh_from_db()
    assert order.status == OrderStatus.ERROR
    assert order.status_message == f"items[0]: DAY-ADULT cannot be issued for {day.isoformat()}, a date in the past"


# ---------------------------------------------------------------------------------------------
# idempotency: a task may run twice, or find its order settled or half done
# ---------------------------------------------------------------------------------------------


def test_issuing_twice_changes_nothing_the_second_time(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 2, day), ln("PARK-AND-SHOW", 2, day, T1930))
    assert issue_order(order_pk=order.pk) == OrderStatus.ISSUED
    numbers = sorted(Asset.objects.values_list("asset_number", flat=True))
    before = Order.objects.get(pk=order.pk)

    assert issue_order(order_pk=order.pk) is None

    after = Order.objects.get(pk=order.pk)
    assert sorted(Asset.objects.values_list("asset_number", flat=True)) == numbers
    assert len(numbers) == 2 + 2 * 3
    assert sold(catalog["DAY-ADULT"], day) == 4
    assert sold(catalog["SHOW-EVENING"], day, T1930) == 2
    assert (after.updated_at, after.issuance_attempts) == (before.updated_at, 1)
    assert len(settle_rows(order)) == 1
    assert Event.objects.filter(subject_id=str(order.order_id)).count() == 1


@pytest.mark.parametrize("settled", [OrderStatus.DRAFT, OrderStatus.ERROR, OrderStatus.CANCELLED])
def test_an_order_already_settled_is_left_alone(partner, catalog, day, settled):
    order = submit(partner, ln("DAY-ADULT", 1, day))
    Order.objects.filter(pk=order.pk).update(status=settled)

    assert issue_order(order_pk=order.pk) is None

    order.refresh_from_db()
    assert order.status == settled and order.issuance_attempts == 0
    assert not Asset.objects.exists() and total_sold() == 0 and not Event.objects.exists()


def test_an_unknown_order_is_nothing_to_do(db):
    assert issue_order(order_pk=987654321) is None


def test_a_run_that_finds_the_order_processing_finishes_it(partner, catalog, day):
    """The worker died after step 1: the retried task carries on from Processing."""
    order = submit(partner, ln("DAY-ADULT", 2, day))
    assert issuance.start_processing(order_pks=[order.pk])  # step 1 only, as if the worker died then

    assert issue_order(order_pk=order.pk) == OrderStatus.ISSUED

    order.refresh_from_db()
    assert order.issuance_attempts == 2
    assert Asset.objects.count() == 2 and sold(catalog["DAY-ADULT"], day) == 2
    assert len(settle_rows(order)) == 1
    assert OrderStatusChange.objects.filter(order=order, to_status="Processing").count() == 1


def test_wallets_found_minted_are_not_minted_or_reserved_again(partner, catalog, day):
    """Defensive: minting and reserving happen in one transaction, so minted wallets already
    hold their capacity; a run that finds some minted mints (and reserves for) only the rest."""
    order = submit(partner, ln("DAY-ADULT", 3, day))
    assert issuance.start_processing(order_pks=[order.pk])
    first_shell = Wallet.objects.filter(order_link__order=order).order_by("position").first()
    lines = list(OrderLine.objects.filter(order=order))
    items = {x.pk: catalog["DAY-ADULT"] for x in lines}
    with transaction.atomic():
        plan = wallet_services.plan_mint(shells=unminted_shells(order=order), lines=lines, items=items)
        plan.shells = [shell for shell in plan.shells if shell.wallet.pk == first_shell.pk]
        reserve_capacity(claims=plan.claims_for_line(line_pk=lines[0].pk))
        wallet_services.mint(plan, validity=WalletValidity.VALID)
    token = Wallet.objects.get(pk=first_shell.pk).manifest_token

    assert issue_order(order_pk=order.pk) == OrderStatus.ISSUED

    assert Asset.objects.filter(wallet__order_link__order=order).count() == 3
    assert Wallet.objects.get(pk=first_shell.pk).manifest_token == token
    assert sold(catalog["DAY-ADULT"], day) == 3


def test_an_order_that_keeps_failing_ends_in_error(partner, catalog, day, settings):
    settings.ISSUANCE_MAX_ATTEMPTS = 3
    order = submit(partner, ln("DAY-ADULT", 1, day))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PROCESSING, issuance_attempts=3)

    assert issue_order(order_pk=order.pk) == OrderStatus.ERROR

    order.refresh_from_db()
    assert order.status_message == (
        "Issuance did not complete in 3 attempts because of an internal error; "
        "replace the order to try again, or contact support."
    )
    assert_nothing_held(order)


# ---------------------------------------------------------------------------------------------
# the event outbox
# ---------------------------------------------------------------------------------------------


def test_each_settle_records_one_event_with_the_settled_order(partner, catalog, day):
    order = issue(submit(partner, ln("DAY-ADULT", 2, day), payment=None))

    (event,) = Event.objects.all()
    assert (event.event_type, event.partner_id, event.subject_id) == (
        "ota_cm_order_processed", partner.pk, str(order.order_id))
    body = event.payload["order"]
    assert body["status"] == "Draft" and body["totalAmount"] == "99.00"
    assert body["items"][0]["unitPrice"] == "49.50"
    assert [len(w["assets"]) for w in body["items"][0]["wallets"]] == [1, 1]
    assert body["updatedAt"].endswith("Z")


def test_no_event_and_nothing_held_when_the_settle_transaction_rolls_back(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 2, day))
    real_publish = issuance.publish_events

    def publish_then_die(**kwargs):
        real_publish(**kwargs)
        raise RuntimeError("worker died")

    with mock.patch.object(issuance, "publish_events", side_effect=publish_then_die):
        with pytest.raises(RuntimeError):
            issue_order(order_pk=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING
    assert not Event.objects.exists()
    assert_nothing_held(order)
    assert settle_rows(order) == []

    assert issue_order(order_pk=order.pk) == OrderStatus.ISSUED
    assert Event.objects.count() == 1
    assert Asset.objects.count() == 2 and sold(catalog["DAY-ADULT"], day) == 2


def test_no_event_when_an_error_settle_rolls_back(partner, catalog, day):
    Item.objects.filter(pk=catalog["DAY-ADULT"].pk).update(active=False)
    order = submit(partner, ln("DAY-ADULT", 1, day))

    with mock.patch.object(issuance, "order_dict", side_effect=RuntimeError("boom")):
        with pytest.raises(RuntimeError):
            issue_order(order_pk=order.pk)

    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING and order.status_message is None
    assert not Event.objects.exists()


# ---------------------------------------------------------------------------------------------
# destroying wallets gives back exactly what issuance took
# ---------------------------------------------------------------------------------------------


def test_destroy_releases_exactly_what_issuance_reserved(partner, catalog, day):
    order = issue(submit(
        partner, ln("DAY-ADULT", 2, day, refs=["R-1", "R-2"]), ln("FAMILY-GROUP", 5, day),
        ln("PARK-AND-SHOW", 3, day, schedule=[ComponentVisit("SHOW-EVENING", day, T2100)]),
    ))
    assert (sold(catalog["DAY-ADULT"], day), sold(catalog["FAMILY-GROUP"], day),
            sold(catalog["SHOW-EVENING"], day, T2100)) == (5, 5, 3)
    # The catalog changes after issuance: release still matches what the tickets hold.
    catalog["PARK-AND-SHOW"].components.filter(component=catalog["SHOW-EVENING"]).delete()

    with transaction.atomic():
        Order.objects.select_for_update().get(pk=order.pk)
        claims = wallet_services.destroy_wallets_and_release(wallet_ids=order_wallet_ids(order=order))

    assert sorted((c.item_pk, c.visit_time or dt.time.min, c.quantity) for c in claims) == sorted([
        (catalog["DAY-ADULT"].pk, dt.time.min, 5),
        (catalog["FAMILY-GROUP"].pk, dt.time.min, 5),
        (catalog["SHOW-EVENING"].pk, T2100, 3),
    ])
    assert total_sold() == 0
    assert not Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=True).exists()
    assert Wallet.objects.filter(order_link__order=order).count() == 6  # rows kept, so manifests can answer 410
    # The partner's references are free again.
    assert issue(submit(partner, ln("DAY-ADULT", 2, day, refs=["R-1", "R-2"]))).status == OrderStatus.ISSUED


def test_destroying_unminted_shells_releases_nothing(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 2, day))
    with transaction.atomic():
        assert wallet_services.destroy_wallets(wallet_ids=order_wallet_ids(order=order)) == []
    assert Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=False).count() == 2


def test_capacity_claims_sum_ticket_admits_per_item_date_and_time(catalog, day):
    show, park = catalog["SHOW-EVENING"], catalog["DAY-ADULT"]
    tickets = [
        wallet_services.TicketRow("ticket", show.pk, day, T1930, 1),
        wallet_services.TicketRow("ticket", park.pk, day, None, 1),
        wallet_services.TicketRow("coupon", park.pk, day, None, None),
        wallet_services.TicketRow("ticket", show.pk, day, T1930, 2),
        wallet_services.TicketRow("ticket", show.pk, day, T2100, 1),
    ]
    assert wallet_services.capacity_claims(tickets) == [
        CapacityClaim(show.pk, day, T1930, 3), CapacityClaim(park.pk, day, None, 1),
        CapacityClaim(show.pk, day, T2100, 1),
    ]


# ---------------------------------------------------------------------------------------------
# the sweeper
# ---------------------------------------------------------------------------------------------


def _age(order: Order, seconds: int) -> None:
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - dt.timedelta(seconds=seconds))


def test_sweeper_re_enqueues_stuck_orders_and_leaves_fresh_ones(
    partner, catalog, day, settings, django_capture_on_commit_callbacks
):
    settings.ISSUANCE_STUCK_SECONDS = 60
    dead_worker = submit(partner, ln("DAY-ADULT", 1, day))
    Order.objects.filter(pk=dead_worker.pk).update(status=OrderStatus.PROCESSING)
    never_queued = submit(partner, ln("DAY-ADULT", 1, day))
    Order.objects.filter(pk=never_queued.pk).update(status=OrderStatus.SUBMITTED)
    fresh = submit(partner, ln("DAY-ADULT", 1, day))
    Order.objects.filter(pk=fresh.pk).update(status=OrderStatus.PROCESSING)
    settled = submit(partner, ln("DAY-ADULT", 1, day))
    Order.objects.filter(pk=settled.pk).update(status=OrderStatus.ISSUED)
    for order in (dead_worker, never_queued, settled):
        _age(order, 600)
    _age(fresh, 10)

    with mock.patch("channel_manager.orders.scheduling.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.sweep_stuck_orders() == 2

    # Back on the queue, and runs queued for it.
    assert {c.args[0] for c in async_task.call_args_list} == {scheduling.ISSUE_DUE_TASK}
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert statuses[dead_worker.pk] == statuses[never_queued.pk] == "Scheduled"
    assert statuses[fresh.pk] == "Processing" and statuses[settled.pk] == "Issued"
    row = OrderStatusChange.objects.filter(order=dead_worker).latest("id")
    assert (row.from_status, row.to_status, row.actor, row.message) == (
        "Processing", "Scheduled", "sweeper", "re-enqueued by sweeper")
    assert OrderStatusChange.objects.filter(order=never_queued).latest("id").to_status == "Scheduled"
    recent = timezone.now() - dt.timedelta(seconds=5)
    assert Order.objects.filter(pk__in=[dead_worker.pk, never_queued.pk], updated_at__gte=recent).count() == 2

    # Touched: the next sweep leaves them be, and queues nothing.
    with mock.patch("channel_manager.orders.scheduling.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.sweep_stuck_orders() == 0
    async_task.assert_not_called()


def test_sweeper_queues_real_tasks_that_issue_the_orders(
    partner, catalog, day, settings, django_capture_on_commit_callbacks
):
    settings.ISSUANCE_STUCK_SECONDS = 60
    order = submit(partner, ln("DAY-ADULT", 1, day))
    assert issuance.start_processing(order_pks=[order.pk])
    _age(order, 600)

    OrmQ.objects.all().delete()  # the run queued at submission was lost
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_stuck_orders()

    (run,) = OrmQ.objects.all()
    assert run.func() == scheduling.ISSUE_DUE_TASK
    assert tasks.issue_due_orders_task() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED
    assert order.issuance_attempts == 2


def test_sweeper_batches_are_bounded(partner, catalog, day, settings, django_capture_on_commit_callbacks):
    settings.ISSUANCE_STUCK_SECONDS = 60
    orders = [submit(partner, ln("DAY-ADULT", 1, day)) for _ in range(5)]
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        status=OrderStatus.PROCESSING, updated_at=timezone.now() - dt.timedelta(seconds=600)
    )
    with mock.patch("channel_manager.orders.scheduling.async_task"):
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.sweep_stuck_orders(limit=2) == 2
            assert tasks.sweep_stuck_orders(limit=2) == 2
            assert tasks.sweep_stuck_orders(limit=2) == 1


def test_the_sweeper_schedule_is_created_once(db):
    migration = importlib.import_module("channel_manager.migrations.0002_issuance_schedules")
    editor = mock.Mock(connection=connection)
    Schedule.objects.filter(name="sweep-stuck-orders").delete()

    migration.create_sweeper_schedule(django_apps, editor)
    migration.create_sweeper_schedule(django_apps, editor)
    importlib.import_module("channel_manager.migrations.0005_task_paths").forward(django_apps, editor)

    (schedule,) = Schedule.objects.filter(name="sweep-stuck-orders")
    assert schedule.func == "channel_manager.orders.tasks.sweep_stuck_orders" == tasks.SWEEP_TASK
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_the_issuance_task_calls_issuance(partner, catalog, day):
    order = submit(partner, ln("DAY-ADULT", 1, day))
    assert tasks.issue_order_task(order.pk) == OrderStatus.ISSUED


# ---------------------------------------------------------------------------------------------
# cost: the number of queries does not grow with the wallets
# ---------------------------------------------------------------------------------------------


def _count_issuance_queries(partner, *lines: LineInput) -> tuple[int, float, Order]:
    order = submit(partner, *lines)
    clear_venue_cache()
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        issue_order(order_pk=order.pk)
        elapsed = time.perf_counter() - started
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED, order.status_message
    return len(ctx.captured_queries), elapsed, order


def _unlimited_show(catalog) -> None:
    catalog["SHOW-EVENING"].time_slots.update(capacity=None)


def _pinned_on_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("SQLite splits bulk writes into batches: the pinned counts are PostgreSQL's")


@pytest.mark.parametrize("code,time_", [("DAY-ADULT", None), ("PARK-AND-SHOW", T1930)])
def test_issuance_queries_do_not_grow_with_the_wallets(partner, catalog, day, code, time_):
    _pinned_on_postgres()
    _unlimited_show(catalog)
    counts = {}
    for n in (1, 6, 500):
        counts[n], elapsed, order = _count_issuance_queries(partner, ln(code, n, day, time_))
        assert Wallet.objects.filter(order_link__order=order, minted_at__isnull=False).count() == n
        print(f"\n{code}: {n} wallets: {counts[n]} queries, {elapsed * 1000:.0f} ms")
    assert counts[1] == counts[6] == counts[500]
    assert counts[1] <= 35


def test_issuing_500_wallets_stays_within_the_queries_of_one(partner, catalog, day, django_assert_max_num_queries):
    _pinned_on_postgres()
    _unlimited_show(catalog)
    one, _, _ = _count_issuance_queries(partner, ln("DAY-ADULT", 1, day))
    order = submit(
        partner, ln("DAY-ADULT", 200, day), ln("FAMILY-GROUP", 6, day), ln("PARK-AND-SHOW", 299, day, T1930)
    )
    clear_venue_cache()
    # Three lines of three kinds cost a few more queries than one ticket line (the package's
    # prefetches), but nothing per wallet.
    with django_assert_max_num_queries(one + 3):
        issue_order(order_pk=order.pk)
    assert Asset.objects.filter(wallet__order_link__order=order).count() == 200 + 1 + 299 * 3


@pytest.mark.parametrize("n", [1, 6, 500])
def test_minting_costs_three_queries_whatever_the_wallets(partner, catalog, day, n, django_assert_num_queries):
    _pinned_on_postgres()
    order = submit(partner, ln("PARK-AND-SHOW", n, day, T1930))
    lines = list(OrderLine.objects.filter(order=order))
    items = {x.pk: Item.objects.prefetch_related("components__component__time_slots", "coupons", "time_slots")
             .get(pk=x.item_id) for x in lines}
    with django_assert_num_queries(3):
        wallets = wallet_services.mint_wallets(
            shells=unminted_shells(order=order), lines=lines, items=items, validity=WalletValidity.VALID
        )
    assert len(wallets) == n
    assert Asset.objects.filter(wallet__order_link__order=order).count() == 3 * n


def test_destroying_costs_three_queries_whatever_the_wallets(partner, catalog, day, django_assert_num_queries):
    """The claims, the gate's change feed (INSERT ... SELECT of the voided assets), the UPDATE."""
    for n in (1, 500):
        order = issue(submit(partner, ln("DAY-ADULT", n, day)))
        with transaction.atomic():
            with django_assert_num_queries(3):
                claims = wallet_services.destroy_wallets(wallet_ids=order_wallet_ids(order=order))
            assert claims == [CapacityClaim(catalog["DAY-ADULT"].pk, day, None, n)]


def test_item_types_words_cover_every_type():
    assert set(issuance.ITEM_TYPE_WORDS) == set(ItemType.values)


def test_items_factory_timed_item_can_be_issued(partner, catalog, day):
    slot_item = ItemFactory(item_id="TOUR", name="Harbour tour", price=Decimal("12.00"))
    TimeSlotFactory(item=slot_item, time=dt.time(10, 0), capacity=2)
    order = issue(submit(partner, ln("TOUR", 2, day, dt.time(10, 0))))
    assert order.status == OrderStatus.ISSUED
    assert sold(slot_item, day, dt.time(10, 0)) == 2


def test_sweeper_leaves_orders_that_wait_on_the_queue_briefly(partner, catalog, day, settings):
    settings.ISSUANCE_STUCK_SECONDS = 60
    order = submit(partner, ln("DAY-ADULT", 1, day))
    _age(order, 30)
    with mock.patch("channel_manager.orders.scheduling.async_task") as async_task:
        assert tasks.sweep_stuck_orders() == 0
    async_task.assert_not_called()
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED


def test_sweeper_kicks_a_run_for_an_order_waiting_too_long_even_with_a_stale_signal(partner, catalog, day, settings):
    settings.ISSUANCE_STUCK_SECONDS = 60
    order = submit(partner, ln("DAY-ADULT", 1, day))
    _age(order, 600)
    IssuanceSignal.objects.create(raised_at=timezone.now() - dt.timedelta(seconds=600))  # its run was lost
    with mock.patch("channel_manager.orders.scheduling.async_task") as async_task:
        assert tasks.sweep_stuck_orders() == 0  # nothing to move: it is on the queue
    assert [c.args[0] for c in async_task.call_args_list] == [scheduling.ISSUE_DUE_TASK]
    assert IssuanceSignal.objects.get().raised_at > timezone.now() - dt.timedelta(seconds=5)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED
