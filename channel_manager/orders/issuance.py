"""Issuance: takes an order in flight to Draft, Issued or Error. The body of the worker task.

`issue_order` may run any number of times, also concurrently, for one order; it converges:

1. A short transaction takes the order's row lock and moves it to Processing (counting the
   attempt), then commits, so that the partner sees Processing.
2. A second transaction takes the lock again and, if the order is still Processing, checks
   every line against the catalog, reserves capacity and mints the wallets inside a savepoint,
   prices the order, settles it and records the `ota_cm_order_processed` event. Everything in
   it commits together or not at all: a worker that dies leaves the order Processing with
   nothing held, and the next run (a retried task, or the sweeper's) starts step 2 afresh.

The first failing check settles the order in Error with a message naming the line by its
0-based JSON path and the reason, e.g. `items[2]: SHOW-EVENING has no 19:30 slot on 2026-12-24`.
The savepoint is rolled back first, so an Error order holds no capacity and no minted assets
(its wallet shells stay, unminted, so the partner still sees its references).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Item, ItemType
from catalog.selectors import items_by_code, venue_today
from catalog.services import CapacityClaim, CapacityExceeded, reserve_capacity
from channel_manager.kernel.formats import hhmm
from channel_manager.kernel.logs import add_log_context
from channel_manager.orders import metrics, state
from channel_manager.orders.models import IN_FLIGHT, Order, OrderLine, OrderStatus, can_transition
from channel_manager.orders.presenters import order_dict
from channel_manager.orders.selectors import orders_with_contents, unminted_shells
from notifications.services import publish_event
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


class LineProblem(Exception):
    """A line cannot be issued; `message` says which and why, for the partner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def issue_order(*, order_pk: int) -> str | None:
    """Issue the order if it is in flight. Returns the status it settled in (Draft, Issued or
    Error), or None when this run had nothing to do (no such order, or already settled)."""
    started = time.monotonic()
    result: str | None = "exception"
    try:
        result = _issue(order_pk) if _start(order_pk) else None
        return result
    finally:
        seconds = time.monotonic() - started
        metrics.observe_issuance(result=result, seconds=seconds)
        if result is not None:
            logger.info("order %s issuance ended in %s", order_pk, result,
                        extra={"duration_ms": round(seconds * 1000, 1), "result": result})


# --------------------------------------------------------------------------------------------
# Step 1: Processing
# --------------------------------------------------------------------------------------------


def _start(order_pk: int) -> bool:
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_pk).first()
        if order is None or order.status not in IN_FLIGHT:
            return False
        if order.status == OrderStatus.PROCESSING:
            # A retried task or a duplicate: the previous run died in step 2 (or is still
            # there, holding the lock; step 2 then waits for it and finds the order settled).
            logger.warning("order %s: issuance restarts while Processing", order_pk)
            order.issuance_attempts += 1
            order.updated_at = timezone.now()
            order.save(update_fields=["issuance_attempts", "updated_at"])
            return True
        if not can_transition(order.status, OrderStatus.PROCESSING):
            return False
        order.issuance_attempts += 1
        state.transition(
            order, OrderStatus.PROCESSING, actor=ACTOR, message=f"issuance attempt {order.issuance_attempts}",
            also_save=["issuance_attempts"],
        )
    return True


# --------------------------------------------------------------------------------------------
# Step 2: check, reserve, mint, price, settle
# --------------------------------------------------------------------------------------------


def _issue(order_pk: int) -> str | None:
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_pk).first()
        if order is None or order.status != OrderStatus.PROCESSING:
            return None
        max_attempts = settings.ISSUANCE_MAX_ATTEMPTS
        if order.issuance_attempts > max_attempts:
            return _settle(
                order,
                OrderStatus.ERROR,
                f"Issuance did not complete in {max_attempts} attempts because of an internal "
                "error; replace the order to try again, or contact support.",
            )
        lines = list(OrderLine.objects.filter(order=order).order_by("line_number"))
        try:
            catalog = items_by_code({line.item_code for line in lines})
            items = resolve_lines(lines=lines, catalog=catalog)
            with transaction.atomic():  # savepoint: a failure leaves nothing reserved or minted
                plan = plan_mint(shells=unminted_shells(order=order), lines=lines, items=items)
                _reserve(lines=lines, plan=plan)
                mint(plan, validity=minted_validity(order))
        except LineProblem as problem:
            return _settle(order, OrderStatus.ERROR, problem.message)
        _price(order=order, lines=lines, items=items)
        settled = OrderStatus.ISSUED if order.payment_reference else OrderStatus.DRAFT
        return _settle(order, settled, None)


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


def _reserve(*, lines: Sequence[OrderLine], plan: MintPlan) -> None:
    """Reserve the capacity of every planned ticket, line by line, all or nothing."""
    tagged: list[tuple[int, CapacityClaim]] = []
    for index, line in enumerate(lines):
        tagged.extend((index, claim) for claim in plan.claims_for_line(line_pk=line.pk))
    if not tagged:
        return
    try:
        reserve_capacity(claims=[claim for _, claim in tagged])
    except CapacityExceeded as exceeded:
        claim = exceeded.claim
        index = next((i for i, c in tagged if c is claim), None)
        if index is None:  # not one of ours by identity: fall back to equality
            index = next(i for i, c in tagged if c == claim)
        codes = {ticket.item.pk: ticket.item.item_id for ticket in plan.planned_tickets()}
        when = claim.visit_date.isoformat()
        if claim.visit_time:
            when += f" at {hhmm(claim.visit_time)}"
        raise LineProblem(
            f"items[{index}]: {codes.get(claim.item_pk, claim.item_pk)} is sold out on {when} "
            f"({exceeded.remaining} left, {claim.quantity} requested)"
        ) from None


def _price(*, order: Order, lines: Sequence[OrderLine], items: dict[int, Item]) -> None:
    """Ticket and package prices are per wallet, a group ticket's per group."""
    total = Decimal("0.00")
    for line in lines:
        item = items[line.pk]
        line.unit_price = item.price
        per_group = item.item_type == ItemType.GROUP_TICKET
        line.line_total = item.price if per_group else item.price * line.quantity
        total += line.line_total
    OrderLine.objects.bulk_update(lines, ["unit_price", "line_total"])
    order.total_amount = total


def _settle(order: Order, to_status: str, message: str | None) -> str:
    """Processing → Draft, Issued or Error, with its history row and event, in the caller's
    transaction."""
    now = timezone.now()
    order.status_message = message
    if to_status == OrderStatus.ERROR:
        order.total_amount = None  # not priced: prices are set only on a successful issuance
    fields = ["status_message", "total_amount"]
    if to_status == OrderStatus.ISSUED:
        order.issued_at = now
        fields.append("issued_at")
    # Refuses (InvalidState) a move the state machine does not have, before writing anything.
    state.transition(order, to_status, actor=ACTOR, message=message or "", also_save=fields, at=now)
    fresh = orders_with_contents(Order.objects.filter(pk=order.pk)).get()
    publish_event(
        event_type=ORDER_PROCESSED,
        partner_pk=order.partner_id,
        subject_id=str(order.order_id),
        payload={"order": order_dict(fresh)},
    )
    add_log_context(order_id=str(order.order_id), partner_id=fresh.partner.partner_id)
    logger.info("order %s settled %s%s", order.pk, to_status, f": {message}" if message else "")
    return to_status
