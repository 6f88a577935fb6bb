"""Operations that change partners and orders. Views, admin actions, commands and tasks call
these; each runs in one transaction and takes keyword arguments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import Item, ItemType
from catalog.selectors import cached_items_by_code, get_venue, items_by_code, venue_today
from catalog.services import release_capacity
from channel_manager.kernel.errors import ValidationFailed
from channel_manager.kernel.models import Partner
from channel_manager.orders import scheduling, state
from channel_manager.orders.errors import DuplicateOrder, InvalidState, OrderNotFound, ReferenceInUse
from channel_manager.orders.models import Order, OrderLine, OrderStatus, is_no_op, operation_allowed
from wallets.models import Wallet
from wallets.services import destroy_order_wallets

# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentVisit:
    item_code: str
    visit_date: dt.date
    visit_time: dt.time | None


@dataclass(frozen=True)
class LineInput:
    item_code: str
    quantity: int
    visit_date: dt.date
    visit_time: dt.time | None = None
    external_reference_numbers: tuple[str, ...] | None = None
    component_schedule: tuple[ComponentVisit, ...] = ()


@dataclass(frozen=True)
class OrderInput:
    sell_to_order_reference: str
    lines: tuple[LineInput, ...]
    payment_reference: str | None = None
    customer: dict[str, Any] | None = None


def wallets_issued_by(item_type: str, quantity: int) -> int:
    """A group ticket issues one wallet for the whole group; tickets and packages one each."""
    return 1 if item_type == ItemType.GROUP_TICKET else quantity


def _check_lines(lines: tuple[LineInput, ...], *, fresh: bool = False) -> dict[str, Item]:
    """Everything about the lines that can be known at submission; raises validation_error
    naming every offending field. Availability is issuance's business."""
    codes = {line.item_code for line in lines}
    items = items_by_code(codes) if fresh else cached_items_by_code(codes)
    today = venue_today()
    errors: list[dict[str, str]] = []
    seen_refs: dict[str, str] = {}
    total_wallets = 0

    def error(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    for i, line in enumerate(lines):
        at = f"items[{i}]"
        item = items.get(line.item_code)
        if item is None:
            error(f"{at}.itemId", f"{line.item_code} is not an item of the catalog.")
            continue
        if line.visit_date < today:
            error(f"{at}.visitDate", f"Must not be before the venue's today ({today.isoformat()}).")
        if item.item_type == ItemType.GROUP_TICKET and item.max_group_size and line.quantity > item.max_group_size:
            error(f"{at}.quantity", f"{item.item_id} admits at most {item.max_group_size} people.")
        n_wallets = wallets_issued_by(item.item_type, line.quantity)
        total_wallets += n_wallets
        refs = line.external_reference_numbers
        if refs is not None:
            if len(refs) != n_wallets:
                error(
                    f"{at}.wallet.externalReferenceNumbers",
                    f"Must hold exactly {n_wallets} value{'s' if n_wallets != 1 else ''}, "
                    "one per wallet the line issues.",
                )
            for j, ref in enumerate(refs):
                if ref in seen_refs:
                    error(
                        f"{at}.wallet.externalReferenceNumbers[{j}]",
                        f"{ref} is repeated within the order (also at {seen_refs[ref]}).",
                    )
                else:
                    seen_refs[ref] = f"{at}.wallet.externalReferenceNumbers[{j}]"
        if line.component_schedule:
            if item.item_type != ItemType.PACKAGE:
                error(f"{at}.wallet.componentSchedule", "Only package items take a component schedule.")
            else:
                component_codes = {c.component.item_id for c in item.components.all()}
                scheduled: set[str] = set()
                for k, visit in enumerate(line.component_schedule):
                    where = f"{at}.wallet.componentSchedule[{k}]"
                    if visit.item_code not in component_codes:
                        error(f"{where}.itemId", f"{visit.item_code} is not a component of {item.item_id}.")
                    elif visit.item_code in scheduled:
                        error(f"{where}.itemId", f"{visit.item_code} is scheduled twice.")
                    scheduled.add(visit.item_code)
                    if visit.visit_date < today:
                        error(f"{where}.visitDate", f"Must not be before the venue's today ({today.isoformat()}).")
    limit = settings.MAX_WALLETS_PER_ORDER
    if total_wallets > limit:
        error("items", f"The order would issue {total_wallets} wallets; at most {limit} are allowed.")
    if errors:
        raise ValidationFailed(errors)
    return items


def _check_references_free(*, partner: Partner, lines: tuple[LineInput, ...], order: Order | None = None) -> None:
    """An external reference may not be live on another order of the partner."""
    where: dict[str, str] = {}
    for i, line in enumerate(lines):
        for j, ref in enumerate(line.external_reference_numbers or ()):
            where[ref] = f"items[{i}].wallet.externalReferenceNumbers[{j}]"
    if not where:
        return
    taken = Wallet.objects.filter(partner=partner, destroyed_at__isnull=True, external_reference_number__in=list(where))
    if order is not None:
        taken = taken.exclude(order=order)
    in_use = sorted(taken.values_list("external_reference_number", flat=True))
    if in_use:
        raise ReferenceInUse(
            f"{', '.join(in_use)} {'is' if len(in_use) == 1 else 'are'} already on a live wallet of another order.",
            errors=[{"field": where[ref], "message": f"{ref} is already in use."} for ref in in_use],
        )


def _write_lines_and_wallets(*, order: Order, lines: tuple[LineInput, ...], items: dict[str, Item]) -> None:
    """Bulk-insert the lines and their wallet shells: two INSERTs whatever the order's size.
    Leaves them on the order as `live_lines` / `live_wallets`, ready to render."""
    line_rows = [
        OrderLine(
            order=order,
            line_number=i + 1,
            item=items[line.item_code],
            item_code=line.item_code,
            item_type=items[line.item_code].item_type,
            quantity=line.quantity,
            visit_date=line.visit_date,
            visit_time=line.visit_time,
            external_reference_numbers=list(line.external_reference_numbers or []),
            component_schedule=[
                {"itemId": v.item_code, "visitDate": v.visit_date.isoformat(),
                 "visitTime": v.visit_time.strftime("%H:%M") if v.visit_time else None}
                for v in line.component_schedule
            ],
        )
        for i, line in enumerate(lines)
    ]
    OrderLine.objects.bulk_create(line_rows)
    wallet_rows = []
    for line_row in line_rows:
        refs = line_row.external_reference_numbers
        for position in range(wallets_issued_by(line_row.item_type, line_row.quantity)):
            ref = refs[position] if refs else None
            wallet_rows.append(
                Wallet(
                    order=order, line=line_row, partner_id=order.partner_id, position=position,
                    external_reference_number=ref, wallet_reference_number=ref,
                )
            )
    Wallet.objects.bulk_create(wallet_rows)
    order.live_lines = line_rows
    order.live_wallets = wallet_rows


def _partner_actor(partner: Partner) -> str:
    return f"partner:{partner.partner_id}"


def create_order(*, partner: Partner, order_input: OrderInput, actor: str | None = None) -> Order:
    """Accept an order: validate it, persist it with its wallet shells, and queue its issuance
    in the same transaction. It is answered as accepted (Submitted); its row is already
    Scheduled, and its history says both (channel_manager.orders.scheduling.submit).

    A duplicate partner reference or an external reference live elsewhere is caught by the
    database's unique constraints (which also settle concurrent submissions); only then do we
    look up which, to answer with the contract's error. The accepted path reads nothing back."""
    items = _check_lines(order_input.lines)
    try:
        with transaction.atomic():
            now = timezone.now()
            order = Order(
                partner=partner,
                sell_to_order_reference=order_input.sell_to_order_reference,
                payment_reference=order_input.payment_reference or None,
                customer=order_input.customer,
                currency=get_venue().currency,
                created_at=now,
            )
            scheduling.submit(order, actor=actor or _partner_actor(partner), at=now)
            _write_lines_and_wallets(order=order, lines=order_input.lines, items=items)
    except IntegrityError:
        existing = (
            Order.objects.filter(partner=partner, sell_to_order_reference=order_input.sell_to_order_reference)
            .values_list("order_id", flat=True)
            .first()
        )
        if existing:
            raise DuplicateOrder(order_id=existing, reference=order_input.sell_to_order_reference) from None
        _check_references_free(partner=partner, lines=order_input.lines)
        _check_lines(order_input.lines, fresh=True)  # an item removed since the snapshot
        raise
    order.partner = partner
    return order


def _lock(order: Order) -> Order:
    """Re-read the order under a row lock: concurrent calls and the worker queue up behind it.
    A concurrent deleteOrder may have removed it meanwhile: then it is as absent as any other."""
    locked = Order.objects.select_for_update().select_related("partner").filter(pk=order.pk).first()
    if locked is None:
        raise OrderNotFound()
    return locked


def _destroy_wallets(order: Order) -> None:
    """Destroy the order's live wallets and give back the capacity they held."""
    claims = destroy_order_wallets(order=order)
    if claims:
        release_capacity(claims=claims)


@transaction.atomic
def confirm_order(*, order: Order, payment_reference: str, actor: str | None = None) -> Order:
    """Draft → Issued with the partner's paymentReference; on Issued a no-op."""
    order = _lock(order)
    if not operation_allowed("confirm", order.status):
        raise InvalidState(status=order.status, operation="confirm")
    if is_no_op("confirm", order.status):
        return order
    now = timezone.now()
    order.payment_reference = payment_reference
    order.issued_at = now
    state.transition(
        order, OrderStatus.ISSUED, actor=actor or _partner_actor(order.partner), message="confirmed",
        also_save=["payment_reference", "issued_at"], at=now,
    )
    return order


# What replace_order resets, written with the status in one UPDATE.
REPLACED_FIELDS = (
    "payment_reference", "customer", "status_message", "total_amount", "issued_at", "issuance_attempts",
)


def replace_order(*, order: Order, order_input: OrderInput, actor: str | None = None) -> Order:
    """Replace a Draft or Error order's contents, keeping its identity: destroys every wallet
    (freeing capacity and references) and re-issues."""
    items = _check_lines(order_input.lines)
    with transaction.atomic():
        order = _lock(order)
        if not operation_allowed("replace", order.status):
            raise InvalidState(status=order.status, operation="replace")
        _check_references_free(partner=order.partner, lines=order_input.lines, order=order)
        _destroy_wallets(order)
        order.lines.all().delete()
        order.payment_reference = order_input.payment_reference or None
        order.customer = order_input.customer
        order.status_message = None
        order.total_amount = None
        order.issued_at = None
        order.issuance_attempts = 0
        # Submitted and at once queued again (Scheduled); answered as Submitted.
        scheduling.submit(
            order, actor=actor or _partner_actor(order.partner), message="replaced",
            also_save=REPLACED_FIELDS,
        )
        _write_lines_and_wallets(order=order, lines=order_input.lines, items=items)
    return order


@transaction.atomic
def delete_order(*, order: Order, actor: str | None = None, reason: str = "") -> Order | None:
    """Issued → Cancelled (row kept, wallets destroyed); Draft and Error are removed entirely,
    freeing the partner reference; Cancelled is a no-op. Returns the kept order or None."""
    order = _lock(order)
    if not operation_allowed("delete", order.status):
        raise InvalidState(status=order.status, operation="delete")
    if is_no_op("delete", order.status):
        return order
    _destroy_wallets(order)
    if order.status == OrderStatus.ISSUED:
        now = timezone.now()
        order.cancelled_at = now
        state.transition(
            order, OrderStatus.CANCELLED, actor=actor or _partner_actor(order.partner),
            message=reason or "cancelled", also_save=["cancelled_at"], at=now,
        )
        return order
    order.delete()
    return None
