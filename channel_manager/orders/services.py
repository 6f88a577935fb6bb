"""Operations that change partners and orders. Views, admin actions, commands and tasks call
these; each runs in one transaction and takes keyword arguments."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from catalog.models import Item, ItemType
from catalog.selectors import cached_items_by_code, get_venue, items_by_code, venue_today
from channel_manager.kernel.dates import LATEST_DAY
from channel_manager.kernel.errors import ValidationFailed
from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.logs import current_request_id
from channel_manager.kernel.models import Partner
from channel_manager.orders import scheduling, state
from channel_manager.orders.errors import (
    AlreadyRedeemed,
    DuplicateOrder,
    InvalidState,
    OrderNotFound,
    ReferenceInUse,
)
from channel_manager.orders.issuance import ORDER_PROCESSED, announce_orders, issue_order
from channel_manager.orders.models import (
    IN_FLIGHT,
    DeletedOrder,
    Order,
    OrderLine,
    OrderStatus,
    OrderWallet,
    TestScenario,
    is_no_op,
    operation_allowed,
)
from channel_manager.orders.presenters import order_dict
from channel_manager.orders.selectors import order_wallet_ids, orders_with_contents
from wallets.gate.services import assets_redeemed
from wallets.models import Asset, Wallet
from wallets.services import (
    HolderSnapshot,
    create_shells,
    delete_wallets,
    destroy_wallets_and_release,
    update_holder,
    validate_wallets,
)

logger = logging.getLogger(__name__)

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
    # A test order's simulated outcome (TestScenario), "" for none; refused on live orders.
    test_scenario: str = ""


# How long a "slow" test order stays in flight before it is issued (API.md, "Test mode").
SLOW_TEST_SECONDS = 10


def _apply_test_scenario(order: Order, scenario: str, *, now: dt.datetime) -> None:
    """Set the order's testScenario; a "slow" one is not issued before SLOW_TEST_SECONDS from
    now (the queue skips it until then, so no worker waits)."""
    if scenario and order.livemode:
        raise ValidationFailed([{"field": "testScenario", "message": "Only test keys (cmk_test_…) may send it."}])
    order.test_scenario = scenario
    order.issue_after = now + dt.timedelta(seconds=SLOW_TEST_SECONDS) if scenario == TestScenario.SLOW else None


def wallets_issued_by(item_type: str, quantity: int) -> int:
    """A group ticket issues one wallet for the whole group; tickets and packages one each."""
    return 1 if item_type == ItemType.GROUP_TICKET else quantity


def _check_lines(lines: tuple[LineInput, ...], *, fresh: bool = False) -> dict[str, Item]:
    """Everything about the lines that can be known at submission; raises validation_error
    naming every offending field. Availability is issuance's business."""
    codes = {line.item_code for line in lines}
    items = items_by_code(codes) if fresh else cached_items_by_code(codes)
    today = venue_today()
    # Far-future visits are refused: a date such as 9999-12-31 would overflow the date arithmetic
    # downstream (a coupon's last day, the pass's expiry), and no venue sells that far ahead.
    horizon = settings.MAX_VISIT_HORIZON_DAYS
    last_day = today + dt.timedelta(days=max(0, min(horizon, (LATEST_DAY - today).days)))  # even if set absurdly
    errors: list[dict[str, str]] = []
    seen_refs: dict[str, str] = {}
    total_wallets = 0

    def error(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    def check_date(field: str, day: dt.date) -> None:
        if day < today:
            error(field, f"Must not be before the venue's today ({today.isoformat()}).")
        elif day > last_day:
            error(field, f"Must not be after {last_day.isoformat()}, {horizon} days from the venue's today.")

    for i, line in enumerate(lines):
        at = f"items[{i}]"
        item = items.get(line.item_code)
        if item is None:
            error(f"{at}.itemId", f"{line.item_code} is not an item of the catalog.")
            continue
        check_date(f"{at}.visitDate", line.visit_date)
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
                    check_date(f"{where}.visitDate", visit.visit_date)
    limit = settings.MAX_WALLETS_PER_ORDER
    if total_wallets > limit:
        error("items", f"The order would issue {total_wallets} wallets; at most {limit} are allowed.")
    if errors:
        raise ValidationFailed(errors)
    return items


def _check_references_free(
    *, partner: Partner, lines: tuple[LineInput, ...], order: Order | None = None, livemode: bool = True
) -> None:
    """An external reference may not be live on another order of the partner (of the same mode)."""
    where: dict[str, str] = {}
    for i, line in enumerate(lines):
        for j, ref in enumerate(line.external_reference_numbers or ()):
            where[ref] = f"items[{i}].wallet.externalReferenceNumbers[{j}]"
    if not where:
        return
    taken = Wallet.objects.filter(
        partner=partner, livemode=livemode, destroyed_at__isnull=True, external_reference_number__in=list(where)
    )
    if order is not None:
        taken = taken.exclude(pk__in=order_wallet_ids(order=order))
    in_use = sorted(taken.values_list("external_reference_number", flat=True))
    if in_use:
        raise ReferenceInUse(
            f"{', '.join(in_use)} {'is' if len(in_use) == 1 else 'are'} already on a live wallet of another order.",
            errors=[{"field": where[ref], "message": f"{ref} is already in use."} for ref in in_use],
        )


def _write_lines_and_wallets(*, order: Order, lines: tuple[LineInput, ...], items: dict[str, Item]) -> None:
    """Insert the wallet shells, then the lines with the links to their wallets: two statements
    whatever the order's size (three off PostgreSQL). Leaves them on the order as `live_lines`
    / `live_wallet_links`, ready to render."""
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
    shells = create_shells(
        partner_pk=order.partner_id,
        livemode=order.livemode,
        snapshot=HolderSnapshot.of_customer(
            order.customer,
            sell_to_order_reference=order.sell_to_order_reference,
            buy_from_order_reference=order.buy_from_order_reference,
        ),
        references=[
            [
                line_row.external_reference_numbers[position] if line_row.external_reference_numbers else None
                for position in range(wallets_issued_by(line_row.item_type, line_row.quantity))
            ]
            for line_row in line_rows
        ],
    )
    _insert_lines_and_links(order=order, line_rows=line_rows, shells=shells)
    order.live_lines = line_rows
    order.live_wallet_links = [
        OrderWallet(order=order, line=line_row, wallet=wallet)
        for line_row, wallets in zip(line_rows, shells, strict=True)
        for wallet in wallets
    ]


def _insert_lines_and_links(*, order: Order, line_rows: list[OrderLine], shells: list[list[Wallet]]) -> None:
    """Insert the lines and link each to its wallets (`shells[i]` are line i's), setting the
    lines' pks. On PostgreSQL one statement: the links are written by a second INSERT in the
    same WITH, joined to the new lines on their line numbers, so that linking wallets costs
    createOrder no statement."""
    connection = connections[OrderLine.objects.db]
    if connection.vendor != "postgresql":
        OrderLine.objects.bulk_create(line_rows)
        OrderWallet.objects.bulk_create(
            OrderWallet(order=order, line=line_row, wallet=wallet)
            for line_row, wallets in zip(line_rows, shells, strict=True)
            for wallet in wallets
        )
        return
    qn = connection.ops.quote_name
    fields = [f for f in OrderLine._meta.concrete_fields if not f.primary_key]
    # Only the JSON columns need Django's adaptation (to Jsonb); psycopg takes the other values
    # (ints, texts, dates, times, None) as they are, which spares each value a field's prep chain.
    json_fields = {f for f in fields if f.get_internal_type() == "JSONField"}
    params: list[Any] = []
    for line_row in line_rows:
        for f in fields:
            value = getattr(line_row, f.attname)
            params.append(f.get_db_prep_save(value, connection) if f in json_fields else value)
    link_numbers = [line_row.line_number for line_row, wallets in zip(line_rows, shells, strict=True) for _ in wallets]
    link_wallets = [wallet.pk for wallets in shells for wallet in wallets]
    params.extend([order.pk, link_numbers, link_wallets])
    pk, number = qn(OrderLine._meta.pk.column), qn(OrderLine._meta.get_field("line_number").column)
    link = OrderWallet._meta
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(line_rows))
    sql = (
        f"WITH new_lines AS (INSERT INTO {qn(OrderLine._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
        f"VALUES {values} RETURNING {pk}, {number}), "
        f"new_links AS (INSERT INTO {qn(link.db_table)} ({qn(link.get_field('order').column)}, "
        f"{qn(link.get_field('line').column)}, {qn(link.get_field('wallet').column)}) "
        f"SELECT %s, new_lines.{pk}, w.wallet_id FROM new_lines "
        f"JOIN unnest(%s::integer[], %s::bigint[]) AS w(line_number, wallet_id) ON w.line_number = new_lines.{number}) "
        f"SELECT {pk}, {number} FROM new_lines"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = dict((line_number, line_pk) for line_pk, line_number in cursor.fetchall())
    for line_row in line_rows:
        line_row.pk = pks[line_row.line_number]
        line_row._state.adding = False
        line_row._state.db = connection.alias


def _partner_actor(partner: Partner) -> str:
    return f"partner:{partner.partner_id}"


def create_order(
    *, partner: Partner, order_input: OrderInput, actor: str | None = None, livemode: bool = True
) -> Order:
    """Accept an order: validate it, persist it with its wallet shells, and queue its issuance
    in the same transaction. It is answered as accepted (Submitted); its row is already
    Scheduled, and its history says both (channel_manager.orders.scheduling.submit).
    `livemode` False makes a test order (API.md, "Test mode"): same path, its own references,
    capacity pool and events.

    A duplicate partner reference or an external reference live elsewhere is caught by the
    database's unique constraints (which also settle concurrent submissions); only then do we
    look up which, to answer with the contract's error. The accepted path reads nothing back."""
    items = _check_lines(order_input.lines)
    try:
        with transaction.atomic():
            now = timezone.now()
            order = Order(
                partner=partner,
                livemode=livemode,
                sell_to_order_reference=order_input.sell_to_order_reference,
                payment_reference=order_input.payment_reference or None,
                customer=order_input.customer,
                currency=get_venue().currency,
                created_at=now,
                request_id=current_request_id() or "",
            )
            _apply_test_scenario(order, order_input.test_scenario, now=now)
            scheduling.submit(order, actor=actor or _partner_actor(partner), at=now)
            _write_lines_and_wallets(order=order, lines=order_input.lines, items=items)
    except IntegrityError:
        existing = (
            Order.objects.filter(
                partner=partner, livemode=livemode, sell_to_order_reference=order_input.sell_to_order_reference
            )
            .values_list("order_id", flat=True)
            .first()
        )
        if existing:
            raise DuplicateOrder(order_id=existing, reference=order_input.sell_to_order_reference) from None
        _check_references_free(partner=partner, lines=order_input.lines, livemode=livemode)
        _check_lines(order_input.lines, fresh=True)  # an item removed since the snapshot
        raise
    order.partner = partner
    return order


def _lock(order: Order) -> Order:
    """Re-read the order under a row lock: concurrent calls and the worker queue up behind it.
    A concurrent deleteOrder may have removed it meanwhile: then it is as absent as any other.

    Only the order's row (`of`): locking its partner's row too would block every insert that
    refers to the partner (orders, events) until we commit, and a caller that then waits for a
    capacity row (a replace, or a confirm that expires a hold) deadlocks with issuance."""
    locked = Order.objects.select_for_update(of=("self",)).select_related("partner").filter(pk=order.pk).first()
    if locked is None:
        raise OrderNotFound()
    return locked


def _destroy_wallets(order: Order) -> None:
    """Make the order's live wallets void and give back the capacity they held."""
    destroy_wallets_and_release(wallet_ids=order_wallet_ids(order=order))


def confirm_order(*, order: Order, payment_reference: str, actor: str | None = None) -> Order:
    """Draft → Issued with the partner's paymentReference; on Issued a no-op.

    A Draft whose hold has passed is not confirmed, even when the schedule has not expired it
    yet: it is expired here, first (committed, announced, exactly as the schedule would), and
    the confirm is refused as on any Error order. Its capacity may already have been promised
    to nobody else, but a hold is a promise with an end, and the end is the same for everyone."""
    with transaction.atomic():
        order = _lock(order)
        now = timezone.now()
        expired = hold_has_passed(order, now=now) and not assets_redeemed(wallet_ids=order_wallet_ids(order=order))
        if expired:
            _expire_holds([order], now=now)
        else:
            if not operation_allowed("confirm", order.status):
                raise InvalidState(status=order.status, operation="confirm")
            if is_no_op("confirm", order.status):
                return order
            order.payment_reference = payment_reference
            order.issued_at = now
            order.hold_expires_at = None
            state.transition(
                order, OrderStatus.ISSUED, actor=actor or _partner_actor(order.partner), message="confirmed",
                also_save=["payment_reference", "issued_at", "hold_expires_at"], at=now,
            )
            validate_wallets(wallet_ids=order_wallet_ids(order=order))
            return order
    # Outside the transaction, so that the expiry stays committed.
    raise InvalidState(status=order.status, operation="confirm")


# What replace_order resets, written with the status in one UPDATE.
REPLACED_FIELDS = (
    "payment_reference", "customer", "status_message", "total_amount", "issued_at", "issuance_attempts",
    "request_id", "hold_expires_at", "test_scenario", "issue_after",
)


def replace_order(*, order: Order, order_input: OrderInput, actor: str | None = None) -> Order:
    """Replace a Draft or Error order's contents, keeping its identity: destroys every wallet
    (freeing capacity and references) and re-issues.

    Like create_order, a reference that became live on another order between our check and our
    insert (a concurrent createOrder or replaceOrder) is caught by the database's unique
    constraint: the whole replacement rolls back and the partner gets reference_in_use."""
    items = _check_lines(order_input.lines)
    try:
        return _replace_locked(order=order, order_input=order_input, items=items, actor=actor)
    except IntegrityError:
        # Rolled back: the order's own wallets are live again, so exclude them from the check.
        _check_references_free(partner=order.partner, lines=order_input.lines, order=order, livemode=order.livemode)
        _check_lines(order_input.lines, fresh=True)  # an item removed since the snapshot
        raise


def _replace_locked(*, order: Order, order_input: OrderInput, items: dict[str, Item], actor: str | None) -> Order:
    with transaction.atomic():
        order = _lock(order)
        if not operation_allowed("replace", order.status):
            raise InvalidState(status=order.status, operation="replace")
        # A used asset is never destroyed; locked until commit, as for delete_order.
        redeemed = assets_redeemed(wallet_ids=order_wallet_ids(order=order))
        if redeemed:
            raise AlreadyRedeemed(redeemed=redeemed, operation="replaced")
        _check_references_free(partner=order.partner, lines=order_input.lines, order=order, livemode=order.livemode)
        _destroy_wallets(order)
        order.lines.all().delete()
        order.payment_reference = order_input.payment_reference or None
        order.customer = order_input.customer
        order.status_message = None
        order.total_amount = None
        order.issued_at = None
        order.issuance_attempts = 0
        order.request_id = current_request_id() or ""
        order.hold_expires_at = None  # a new hold starts if it settles Draft again
        _apply_test_scenario(order, order_input.test_scenario, now=timezone.now())
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
    freeing the partner reference, and leave a tombstone (DeletedOrder: who, when, why, what;
    `actor` is partner:<id> or staff:<username>); Cancelled is a no-op. Returns the kept order
    or None."""
    order = _lock(order)
    if not operation_allowed("delete", order.status):
        raise InvalidState(status=order.status, operation="delete")
    if is_no_op("delete", order.status):
        return order
    actor = actor or _partner_actor(order.partner)
    # Used tickets are not refunded through the API. The assets stay locked until commit, so no
    # scan admits one of them between this check and their wallets turning void.
    redeemed = assets_redeemed(wallet_ids=order_wallet_ids(order=order))
    if redeemed:
        raise AlreadyRedeemed(redeemed=redeemed)
    if order.status == OrderStatus.ISSUED:
        _destroy_wallets(order)
        now = timezone.now()
        order.cancelled_at = now
        state.transition(
            order, OrderStatus.CANCELLED, actor=actor, message=reason or "cancelled", also_save=["cancelled_at"],
            at=now,
        )
        return order
    # Draft or Error: the row goes, its tombstone stays; it shows the order before its wallets go.
    _write_tombstone(orders_with_contents(Order.objects.filter(pk=order.pk)).get(), actor=actor, reason=reason)
    _destroy_wallets(order)
    delete_wallets(wallet_ids=order_wallet_ids(order=order))  # gone with the order, as its links
    order.delete()
    return None


def _write_tombstone(order: Order, *, actor: str, reason: str) -> DeletedOrder:
    """What remains of a deleted Draft or Error order (the audit trail): `order` carries its
    contents as they were before its wallets were destroyed."""
    return DeletedOrder.objects.create(
        order_id=order.order_id,
        order_pk=order.pk,
        partner=order.partner,
        livemode=order.livemode,
        sell_to_order_reference=order.sell_to_order_reference,
        buy_from_order_reference=order.buy_from_order_reference,
        payment_reference=order.payment_reference,
        status=order.status,
        currency=order.currency,
        total_amount=order.total_amount,
        created_at=order.created_at,
        actor=actor,
        reason=reason,
        order_json=order_dict(order),
        deleted_at=timezone.now(),
    )


# --------------------------------------------------------------------------------------------
# Draft holds (API.md, "Draft holds")
# --------------------------------------------------------------------------------------------

HOLD_EXPIRY_ACTOR = "hold-expiry"
# Orders expired per transaction: each destroys wallets, releases capacity and writes an event.
HOLD_EXPIRY_BATCH = 100


def hold_has_passed(order: Order, *, now: dt.datetime) -> bool:
    """A Draft whose hold has an end that is not in the future."""
    return (
        order.status == OrderStatus.DRAFT and order.hold_expires_at is not None and order.hold_expires_at <= now
    )


def hold_expired_message(hold_expires_at: dt.datetime) -> str:
    return (
        f"hold expired at {rfc3339(hold_expires_at)}: the order was not confirmed in time; its wallets are void "
        "and its capacity is released. Replace the order to issue it again, or delete it."
    )


def expire_draft_holds(*, now: dt.datetime | None = None, limit: int | None = None) -> int:
    """Expire up to `limit` Draft orders whose hold has passed, soonest first, in one
    transaction: destroy their wallets (their manifests answer 410), release their capacity,
    settle them in Error with a statusMessage that starts `hold expired`, and announce each with
    `ota_cm_order_processed`. Returns how many it expired.

    Exactly once, also when runs overlap: an order is taken under its row lock, skipping those
    another transaction holds (a concurrent run, or a partner confirming, replacing or deleting
    it), and only while it is still a Draft whose hold has passed; once Error, it is not a
    candidate any more."""
    now = now or timezone.now()
    limit = limit or HOLD_EXPIRY_BATCH
    with transaction.atomic():
        due = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(status=OrderStatus.DRAFT, hold_expires_at__lte=now)
            # Expiry never touches a used asset (a Draft's are not valid at the gate; this holds
            # even if one was used): such an order waits for the partner or staff.
            .exclude(Exists(Asset.objects.filter(wallet__order_link__order=OuterRef("pk"), redeemed_at__isnull=False)))
            .order_by("hold_expires_at", "pk")[:limit]
        )
        _expire_holds(due, now=now)
    return len(due)


def _expire_holds(orders: list[Order], *, now: dt.datetime) -> None:
    """Draft → Error for these locked orders whose hold has passed, with everything that goes
    with it, in the caller's transaction. A fixed number of statements for any number."""
    if not orders:
        return
    pks = [order.pk for order in orders]
    destroy_wallets_and_release(wallet_ids=OrderWallet.objects.filter(order_id__in=pks).values("wallet_id"), now=now)
    # An Error order is not priced (as when issuance fails): nothing was sold.
    OrderLine.objects.filter(order_id__in=pks).update(unit_price=None, line_total=None)
    for order in orders:
        order.status_message = hold_expired_message(order.hold_expires_at)
        order.hold_expires_at = None
        order.total_amount = None
    state.transition(
        orders, OrderStatus.ERROR, actor=HOLD_EXPIRY_ACTOR, message=lambda order: order.status_message,
        also_save=["status_message", "hold_expires_at", "total_amount"], at=now,
    )
    announce_orders(event_type=ORDER_PROCESSED, order_pks=pks)
    logger.info("expired the holds of %d Draft orders", len(orders), extra={"count": len(orders)})


def extend_hold(*, order: Order, minutes: int, actor: str | None = None) -> Order:
    """Move a Draft's hold to end `minutes` from now (OCTO's extend; 0 means never, as for
    draftHoldMinutes). Not a status change: the order stays Draft. A Draft whose hold has
    already passed is expired first (committed, announced) and the extension refused, as
    confirm_order does: a hold that ended is not brought back."""
    with transaction.atomic():
        order = _lock(order)
        now = timezone.now()
        expired = hold_has_passed(order, now=now)
        if expired:
            _expire_holds([order], now=now)
        else:
            if order.status != OrderStatus.DRAFT:
                raise InvalidState(status=order.status, operation="extend the hold of")
            order.hold_expires_at = now + dt.timedelta(minutes=minutes) if minutes else None
            order.updated_at = now
            Order.objects.filter(pk=order.pk).update(hold_expires_at=order.hold_expires_at, updated_at=now)
            logger.info(
                "order %s: hold moved to %s by %s", order.pk, rfc3339(order.hold_expires_at),
                actor or _partner_actor(order.partner),
            )
            return order
    raise InvalidState(status=order.status, operation="extend the hold of")


def update_customer(*, order: Order, customer: dict[str, Any] | None, actor: str | None = None) -> Order:
    """Change a Draft order's customer without issuing it again (its wallets stay, their holder
    snapshot follows): what a replace would do to the header alone, minus re-minting. Only in
    Draft, else 409 invalid_state."""
    with transaction.atomic():
        order = _lock(order)
        if order.status != OrderStatus.DRAFT:
            raise InvalidState(status=order.status, operation="change the customer of")
        now = timezone.now()
        order.customer = customer
        order.updated_at = now
        Order.objects.filter(pk=order.pk).update(customer=customer, updated_at=now)
        update_holder(
            wallet_ids=order_wallet_ids(order=order),
            snapshot=HolderSnapshot.of_customer(
                customer, sell_to_order_reference=order.sell_to_order_reference,
                buy_from_order_reference=order.buy_from_order_reference,
            ),
        )
        logger.info("order %s: customer changed by %s", order.pk, actor or _partner_actor(order.partner))
    return order


def issue_inline(*, order: Order, timeout_seconds: float) -> str | None:
    """Issue a just-submitted order in the caller's request instead of waiting for a worker
    (the OCTO façade answers with the booking). The same issuance a worker runs
    (issuance.issue_order: it converges when a worker takes the order too). On PostgreSQL the
    wait for the order's lock (a worker issuing it) is bounded by `timeout_seconds`.

    Returns the status the order settled in (Draft, Issued or Error), or None when it is still
    in flight after the bound: a worker settles it, as any order."""
    connection = connections[Order.objects.db]
    bounded = connection.vendor == "postgresql"
    try:
        if bounded:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(timeout_seconds * 1000)}ms"])
        try:
            issue_order(order_pk=order.pk)
        except OperationalError as error:  # lock_timeout: a worker holds it longer than the bound
            logger.warning("order %s: inline issuance gave up waiting: %s", order.pk, error)
    finally:
        if bounded and not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', '0', false)")
    status = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
    return None if status is None or status in IN_FLIGHT else status
