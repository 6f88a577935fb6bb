"""Issuance: takes orders in flight to Draft, Issued or Error, many at a time. The body of the
worker tasks.

The orders table is the queue (channel_manager.orders.scheduling). A run claims a batch of due
orders and issues them with set-based statements; `issue_order` does the same for one order.
Both may run any number of times, also concurrently, for the same orders; they converge:

1. A short transaction claims the orders (row locks; SKIP LOCKED for the queue, so that
   concurrent runs share it) and moves them to Processing, counting the attempt, then commits,
   so that partners see Processing.
2. A second transaction takes the locks again and, for the orders still Processing, checks
   every line against the catalog, reserves the capacity of all of them at once (rows locked
   once, in one global order: first come, first served, and an order that does not fit takes
   nothing), mints the wallets (one UPDATE and one INSERT per validity), prices the lines,
   settles every order (one UPDATE and one history INSERT per outcome) and records the
   `ota_cm_order_processed` events. Everything in it commits together or not at all: a worker
   that dies leaves its orders Processing with nothing held, and the sweeper's run starts step 2
   afresh.

An order that cannot be issued settles in Error with a message naming the line by its 0-based
JSON path and the reason, e.g. `items[2]: SHOW-EVENING has no 19:30 slot on 2026-12-24`; it
holds no capacity and no minted assets (its wallet shells stay, unminted, so the partner still
sees its references), and it does not hold up the other orders of its batch. Should a batch
fail for another reason (a bug, a database error), each of its orders is retried on its own,
so one poisoned order cannot stall its neighbours.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from catalog.models import Item, ItemType
from catalog.selectors import items_by_code, venue_today
from catalog.services import CapacityClaim, CapacityExceeded, reserve_capacity_groups
from channel_manager.kernel.bulk import update_rows
from channel_manager.kernel.formats import hhmm
from channel_manager.kernel.models import Partner
from channel_manager.orders import metrics, state
from channel_manager.orders.models import IN_FLIGHT, Order, OrderLine, OrderStatus, TestScenario, can_transition
from channel_manager.orders.presenters import order_dict
from channel_manager.orders.selectors import orders_with_contents, unminted_shells_of
from notifications.services import EventSpec, publish_events
from wallets.models import WalletValidity
from wallets.services import MintPlan, component_visits, is_timed, mint, plan_mint

logger = logging.getLogger(__name__)

ACTOR = "worker"
ORDER_PROCESSED = "ota_cm_order_processed"

ITEM_TYPE_WORDS = {
    ItemType.TICKET: "ticket",
    ItemType.GROUP_TICKET: "group ticket",
    ItemType.PACKAGE: "package",
}


# What a test order with testScenario "error" settles with (API.md, "Test mode").
SIMULATED_ERROR = (
    'items[0]: simulated error (testScenario "error"); replace the order without testScenario to issue it'
)


class LineProblem(Exception):
    """A line cannot be issued; `message` says which and why, for the partner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def issue_order(*, order_pk: int) -> str | None:
    """Issue one order if it is in flight (waiting for its lock if a run holds it). Returns the
    status it settled in (Draft, Issued or Error), or None when this run had nothing to do (no
    such order, or already settled)."""
    return _run(lambda: start_processing(order_pks=[order_pk]), count_idle=True).get(order_pk)


def issue_due_orders(*, limit: int | None = None) -> dict[int, str] | None:
    """Claim up to `limit` due (Scheduled) orders, oldest first, skipping those another run
    holds, and issue them. Returns {order pk: settled status}, or None when no order was due."""
    limit = limit or settings.ISSUANCE_BATCH_SIZE
    # A "slow" test order is due from its issue_after on (channel_manager.orders.scheduling.kick_at).
    not_yet = Q(issue_after__gt=timezone.now())
    due = (
        Order.objects.select_for_update(skip_locked=True)
        .filter(status=OrderStatus.SCHEDULED)
        .exclude(not_yet)
        .order_by("pk")
    )
    claimed: list[int] = []

    def start() -> list[int]:
        claimed.extend(_start(due[:limit]))
        return claimed

    settled = _run(start)
    return settled if claimed else None


def _run(start, *, count_idle: bool = False) -> dict[int, str]:
    started = time.monotonic()
    pks = start()
    if not pks:
        if count_idle:  # a retried or duplicate task for an order that has settled
            metrics.observe_issuance(result=None, seconds=time.monotonic() - started)
        return {}
    try:
        settled = _issue(pks, started=started)
    except Exception:
        if len(pks) == 1:
            metrics.observe_issuance(result="exception", seconds=time.monotonic() - started)
            raise
        # Something other than the orders' own content failed: issue each on its own, so that
        # a poisoned order fails alone (it stays Processing; the sweeper retries it, counting).
        logger.exception("a batch of %d orders failed; issuing them one by one", len(pks))
        settled = {}
        for order_pk in pks:
            try:
                settled.update(_issue([order_pk], started=started))
            except Exception:
                logger.exception("order %s: issuance failed", order_pk)
                metrics.observe_issuance(result="exception", seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    for status in settled.values():
        metrics.observe_issuance(result=status, seconds=seconds)
    logger.info("issued a batch of %d orders in %.0f ms", len(settled), seconds * 1000,
                extra={"duration_ms": round(seconds * 1000, 1)})
    return settled


# --------------------------------------------------------------------------------------------
# Step 1: Processing
# --------------------------------------------------------------------------------------------


def start_processing(*, order_pks: Sequence[int]) -> list[int]:
    """Step 1 alone for these orders (waiting for their locks): those in flight are Processing
    when it returns. Returns the pks step 2 should issue."""
    return _start(Order.objects.select_for_update().filter(pk__in=order_pks).order_by("pk"))


def _start(candidates) -> list[int]:
    """Lock the candidates, move those in flight to Processing (counting the attempt), commit.
    Returns the pks of the orders step 2 should issue. Three statements for any number."""
    with transaction.atomic():
        orders = [o for o in candidates.only("pk", "status", "issuance_attempts") if o.status in IN_FLIGHT]
        if not orders:
            return []
        for order in orders:
            order.issuance_attempts += 1
        restarted = [o for o in orders if o.status == OrderStatus.PROCESSING]
        fresh = [
            o for o in orders
            if o.status != OrderStatus.PROCESSING and can_transition(o.status, OrderStatus.PROCESSING)
        ]
        if restarted:
            # A retried run or a duplicate: the previous run died in step 2 (or is still there,
            # holding the locks; step 2 then waits for it and finds the order settled).
            logger.warning("orders %s: issuance restarts while Processing", [o.pk for o in restarted])
            Order.objects.filter(pk__in=[o.pk for o in restarted]).update(
                issuance_attempts=F("issuance_attempts") + 1, updated_at=timezone.now()
            )
        state.transition(
            fresh, OrderStatus.PROCESSING, actor=ACTOR,
            message=lambda order: f"issuance attempt {order.issuance_attempts}", also_save=["issuance_attempts"],
        )
    return [o.pk for o in restarted + fresh]


# --------------------------------------------------------------------------------------------
# Step 2: check, reserve, mint, price, settle
# --------------------------------------------------------------------------------------------


@dataclass
class _Planned:
    order: Order
    lines: list[OrderLine]
    items: dict[int, Item]
    plan: MintPlan


def _issue(order_pks: Sequence[int], *, started: float) -> dict[int, str]:
    """Step 2 for the orders (those still Processing); {pk: settled status}."""
    with transaction.atomic():
        orders = list(
            Order.objects.select_for_update().filter(pk__in=order_pks, status=OrderStatus.PROCESSING).order_by("pk")
        )
        if not orders:
            return {}
        errors: dict[int, str] = {}
        max_attempts = settings.ISSUANCE_MAX_ATTEMPTS
        for order in orders:
            if order.issuance_attempts > max_attempts:
                errors[order.pk] = (
                    f"Issuance did not complete in {max_attempts} attempts because of an internal "
                    "error; replace the order to try again, or contact support."
                )
            elif order.test_scenario == TestScenario.ERROR:
                errors[order.pk] = SIMULATED_ERROR
        active = [order for order in orders if order.pk not in errors]
        lines_of: dict[int, list[OrderLine]] = {order.pk: [] for order in active}
        for line in OrderLine.objects.filter(order__in=active).order_by("order_id", "line_number"):
            lines_of[line.order_id].append(line)
        shells_of = unminted_shells_of(order_pks=[order.pk for order in active])
        catalog = items_by_code({line.item_code for lines in lines_of.values() for line in lines})
        planned: list[_Planned] = []
        for order in active:
            lines = lines_of[order.pk]
            try:
                items = resolve_lines(lines=lines, catalog=catalog)
                plan = plan_mint(shells=shells_of.get(order.pk, []), lines=lines, items=items)
            except LineProblem as problem:
                errors[order.pk] = problem.message
                continue
            planned.append(_Planned(order, lines, items, plan))
        # Test orders draw on the test pool (their claims say so): one call serves both modes.
        refused = reserve_capacity_groups(
            groups=[(entry.order.pk, [claim for _, claim in _tagged_claims(entry)]) for entry in planned]
        )
        for entry in planned:
            if entry.order.pk in refused:
                errors[entry.order.pk] = _sold_out(entry, refused[entry.order.pk])
        issued = [entry for entry in planned if entry.order.pk not in errors]
        _mint(issued)
        _price(issued)
        return _settle(orders, errors, started=started)


def _tagged_claims(entry: _Planned) -> list[tuple[int, CapacityClaim]]:
    """The order's capacity claims, line by line, each with its line's index."""
    tagged: list[tuple[int, CapacityClaim]] = []
    livemode = entry.order.livemode
    for index, line in enumerate(entry.lines):
        tagged.extend(
            (index, claim if livemode else replace(claim, livemode=False))
            for claim in entry.plan.claims_for_line(line_pk=line.pk)
        )
    return tagged


def _sold_out(entry: _Planned, exceeded: CapacityExceeded) -> str:
    claim = exceeded.claim
    tagged = _tagged_claims(entry)
    index = next((i for i, c in tagged if c == claim), 0)
    codes = {ticket.item.pk: ticket.item.item_id for ticket in entry.plan.planned_tickets()}
    when = claim.visit_date.isoformat()
    if claim.visit_time:
        when += f" at {hhmm(claim.visit_time)}"
    return (
        f"items[{index}]: {codes.get(claim.item_pk, claim.item_pk)} is sold out on {when} "
        f"({exceeded.remaining} left, {claim.quantity} requested)"
    )


def _mint(issued: Sequence[_Planned]) -> None:
    """One plan per validity (pending for Draft, valid for Issued): one UPDATE and one INSERT each."""
    by_validity: dict[str, MintPlan] = {}
    for entry in issued:
        combined = by_validity.setdefault(minted_validity(entry.order), MintPlan(shells=[]))
        combined.shells.extend(entry.plan.shells)
        combined.contents.update(entry.plan.contents)
    for validity, plan in by_validity.items():
        mint(plan, validity=validity)


def minted_validity(order: Order) -> str:
    """Wallets minted for an order that settles Issued (it has a paymentReference) are valid;
    for a Draft they are pending until the order is confirmed."""
    return WalletValidity.VALID if order.payment_reference else WalletValidity.PENDING


def resolve_lines(*, lines: Sequence[OrderLine], catalog: dict[str, Item]) -> dict[int, Item]:
    """Check every line (in order) against the catalog; returns each line's item by line pk,
    or raises LineProblem for the first line that cannot be issued."""
    today = venue_today()
    items: dict[int, Item] = {}
    for index, line in enumerate(lines):
        items[line.pk] = _resolve_line(f"items[{index}]", line, catalog, today)
    return items


def _resolve_line(at: str, line: OrderLine, catalog: dict[str, Item], today: dt.date) -> Item:
    code = line.item_code
    item = catalog.get(code)
    if item is None or item.pk != line.item_id:
        raise LineProblem(f"{at}: {code} is no longer in the catalog")
    if item.item_type != line.item_type:
        raise LineProblem(
            f"{at}: {code} is now a {ITEM_TYPE_WORDS.get(item.item_type, item.item_type)}, "
            f"no longer a {ITEM_TYPE_WORDS.get(line.item_type, line.item_type)}; replace the order"
        )
    _check_sellable(at, item, line.visit_date, today)
    if item.item_type == ItemType.PACKAGE:
        _check_package(at, line, item, today)
        return item
    _check_time(at, item, line.visit_date, line.visit_time)
    limit = item.max_group_size
    if item.item_type == ItemType.GROUP_TICKET and limit and line.quantity > limit:
        raise LineProblem(f"{at}: {code} admits at most {limit} people ({line.quantity} requested)")
    return item


def _check_package(at: str, line: OrderLine, package: Item, today: dt.date) -> None:
    """The package itself is checked on the line's date; each component on its own date and
    time (its componentSchedule entry, else the line's)."""
    components = {link.component.item_id for link in package.components.all()}
    for entry in line.component_schedule or []:
        if entry.get("itemId") not in components:
            raise LineProblem(
                f"{at}: {entry.get('itemId')} is no longer a component of {package.item_id}"
            )
    for visit in component_visits(line=line, package=package):
        component = visit.component
        _check_sellable(at, component, visit.visit_date, today)
        hint = "" if visit.scheduled else "; schedule it in wallet.componentSchedule"
        _check_time(at, component, visit.visit_date, visit.visit_time, hint=hint)


def _check_sellable(at: str, item: Item, visit_date: dt.date, today: dt.date) -> None:
    code = item.item_id
    if not item.active:
        raise LineProblem(f"{at}: {code} is not active")
    day = visit_date.isoformat()
    if visit_date < today:
        raise LineProblem(f"{at}: {code} cannot be issued for {day}, a date in the past")
    if not item.on_sale(visit_date):
        raise LineProblem(f"{at}: {code} is not on sale for {day} ({_sale_window(item)})")


def _sale_window(item: Item) -> str:
    if item.sale_from and item.sale_until:
        return f"on sale {item.sale_from.isoformat()} to {item.sale_until.isoformat()}"
    if item.sale_from:
        return f"on sale from {item.sale_from.isoformat()}"
    return f"on sale until {item.sale_until.isoformat()}"




def _check_time(
    at: str, item: Item, visit_date: dt.date, visit_time: dt.time | None, *, hint: str = ""
) -> None:
    code = item.item_id
    if is_timed(item):
        slots = [slot.time for slot in item.time_slots.all()]
        if visit_time is None:
            raise LineProblem(
                f"{at}: {code} needs a visitTime on {visit_date.isoformat()} "
                f"(slots: {', '.join(hhmm(t) for t in slots)}){hint}"
            )
        if visit_time not in slots:
            raise LineProblem(
                f"{at}: {code} has no {hhmm(visit_time)} slot on {visit_date.isoformat()}"
            )
    elif visit_time is not None:
        raise LineProblem(
            f"{at}: {code} has no time slots; visitTime must be null (got {hhmm(visit_time)})"
        )


def _price(issued: Sequence[_Planned]) -> None:
    """Ticket and package prices are per wallet, a group ticket's per group. One UPDATE."""
    priced: list[OrderLine] = []
    for entry in issued:
        total = Decimal("0.00")
        for line in entry.lines:
            item = entry.items[line.pk]
            line.unit_price = item.price
            per_group = item.item_type == ItemType.GROUP_TICKET
            line.line_total = item.price if per_group else item.price * line.quantity
            total += line.line_total
        priced.extend(entry.lines)
        entry.order.total_amount = total
    if priced:
        update_rows(priced, ["unit_price", "line_total"])


def _start_holds(drafts: Sequence[Order], *, now: dt.datetime) -> None:
    """Each order settling Draft holds its capacity for its partnership's draftHoldMinutes from
    now (no end when 0); every other outcome holds nothing (`hold_expires_at` stays None, as
    replace and the model leave it). One query, for the Drafts' partnerships only."""
    if not drafts:
        return
    minutes = dict(
        Partner.objects.filter(pk__in={order.partner_id for order in drafts}).values_list("pk", "draft_hold_minutes")
    )
    for order in drafts:
        hold = minutes.get(order.partner_id, 0)
        order.hold_expires_at = now + dt.timedelta(minutes=hold) if hold else None


def _settle(orders: Sequence[Order], errors: dict[int, str], *, started: float) -> dict[int, str]:
    """Processing → Draft, Issued or Error: one UPDATE and one history INSERT per outcome, then
    the events (in the caller's transaction)."""
    now = timezone.now()
    outcome: dict[str, list[Order]] = {}
    for order in orders:
        message = errors.get(order.pk)
        order.status_message = message
        order.hold_expires_at = None  # only a Draft holds capacity: _start_holds sets its end
        if message is not None:
            to_status = OrderStatus.ERROR
            order.total_amount = None  # not priced: prices are set only on a successful issuance
        else:
            to_status = OrderStatus.ISSUED if order.payment_reference else OrderStatus.DRAFT
            if to_status == OrderStatus.ISSUED:
                order.issued_at = now
        outcome.setdefault(to_status, []).append(order)
    _start_holds(outcome.get(OrderStatus.DRAFT, []), now=now)
    for to_status, group in outcome.items():
        fields = ["status_message", "total_amount", "hold_expires_at"]
        fields += ["issued_at"] if to_status == OrderStatus.ISSUED else []
        # Refuses (InvalidState) a move the state machine does not have, before writing anything.
        state.transition(
            group, to_status, actor=ACTOR, message=lambda order: order.status_message or "", also_save=fields, at=now
        )
    fresh = announce_orders(event_type=ORDER_PROCESSED, order_pks=[order.pk for order in orders])
    settled = {}
    for order in fresh:
        settled[order.pk] = order.status
        # Each order's lines carry the request id of the request that submitted it.
        context = {"order_id": str(order.order_id), "partner_id": order.partner.partner_id}
        if order.request_id:
            context["request_id"] = order.request_id
        logger.info(
            "order %s settled %s%s", order.pk, order.status,
            f": {order.status_message}" if order.status_message else "", extra=context,
        )
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        logger.info("order %s issuance ended in %s", order.pk, order.status,
                    extra={**context, "duration_ms": duration_ms, "result": order.status})
    return settled


def announce_orders(*, event_type: str, order_pks: list[int]) -> list[Order]:
    """Write one event per order (its body as it stands now, in its mode) to the outbox, in the
    caller's transaction; returns the orders, read with their contents."""
    orders = list(orders_with_contents(Order.objects.filter(pk__in=order_pks)).order_by("pk"))
    publish_events(
        event_type=event_type,
        events=[
            EventSpec(
                partner_pk=order.partner_id, subject_id=str(order.order_id), payload={"order": order_dict(order)},
                livemode=order.livemode,
            )
            for order in orders
        ],
    )
    return orders
