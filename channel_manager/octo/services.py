"""OCTO's booking operations, each made of the order services the partner API calls
(channel_manager.orders.services): a reservation is an order without a paymentReference,
issued inline (so OCTO gets its booking in the response) and left Draft (ON_HOLD); confirm
is confirmOrder; cancel is deleteOrder. Refusals are OctoErrors."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from catalog.models import Item, ItemType
from catalog.selectors import items_by_code
from channel_manager.kernel.errors import DomainError, ValidationFailed
from channel_manager.kernel.models import Partner
from channel_manager.octo import mapping, selectors
from channel_manager.octo.errors import (
    BAD_REQUEST,
    INVALID_AVAILABILITY_ID,
    INVALID_BOOKING_UUID,
    INVALID_OPTION_ID,
    INVALID_PRODUCT_ID,
    INVALID_UNIT_ID,
    UNPROCESSABLE_ENTITY,
    OctoError,
)
from channel_manager.octo.models import OctoBooking
from channel_manager.octo.parsing import UnitItemInput
from channel_manager.octo.presenters import CONFIRMED, EXPIRED, REDEEMED, booking_status
from channel_manager.octo.selectors import BookingRecord
from channel_manager.orders import services
from channel_manager.orders.errors import AlreadyRedeemed, InvalidState, OrderNotFound
from channel_manager.orders.models import Order, OrderStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """What a booking sells: a product, its availability and its unit items."""

    item: Item
    visit_date: dt.date
    visit_time: dt.time | None
    availability_id: str
    unit_items: tuple[UnitItemInput, ...]


def inline_seconds() -> float:
    return float(settings.OCTO_INLINE_ISSUANCE_SECONDS)


def product(product_id: Any) -> Item:
    """An active item said as an OCTO product, or INVALID_PRODUCT_ID."""
    known = isinstance(product_id, str) and len(product_id) <= 64
    item = items_by_code([product_id]).get(product_id) if known else None
    if item is None or not mapping.offered(item):
        raise OctoError(INVALID_PRODUCT_ID, f"No product {product_id!s:.64}.", productId=str(product_id)[:64])
    return item


def check_option(option_id: Any) -> None:
    if option_id != mapping.OPTION_ID:
        raise OctoError(INVALID_OPTION_ID, f"No option {option_id!s:.64}: every product has one option, DEFAULT.",
                        optionId=str(option_id)[:64])


def check_units(item: Item, unit_ids: list[Any]) -> None:
    unit = mapping.unit_of(item)
    for unit_id in unit_ids:
        if unit_id != unit.id:
            raise OctoError(INVALID_UNIT_ID, f"No unit {unit_id!s:.64} on {item.item_id}: its one unit is {unit.id}.",
                            unitId=str(unit_id)[:64])


def availability(item: Item, availability_id: Any) -> tuple[dt.date, dt.time | None, str]:
    parsed = mapping.parse_availability_id(item, availability_id)
    if parsed is None:
        raise OctoError(INVALID_AVAILABILITY_ID, f"No availability {availability_id!s:.64} on {item.item_id}.",
                        availabilityId=str(availability_id)[:64])
    visit_date, visit_time = parsed
    return visit_date, visit_time, mapping.availability_id(visit_date, visit_time)


def choose(*, product_id: Any, option_id: Any, availability_id: Any, unit_items: tuple[UnitItemInput, ...]) -> Choice:
    item = product(product_id)
    check_option(option_id)
    check_units(item, [u.unit_id for u in unit_items])
    if not unit_items:
        raise OctoError(UNPROCESSABLE_ENTITY, "unitItems is empty: a booking needs at least one unit item.")
    visit_date, visit_time, canonical = availability(item, availability_id)
    if item.item_type == ItemType.GROUP_TICKET and len(unit_items) > 50:
        raise OctoError(BAD_REQUEST, "A booking holds at most 50 groups.")
    return Choice(item, visit_date, visit_time, canonical, unit_items)


def order_input(*, reference: str, choice: Choice, customer: dict[str, Any] | None) -> services.OrderInput:
    """One line for tickets and packages (a wallet per unit item), one line per group for a
    group ticket (a group's wallet admits the unit's paxCount)."""
    item = choice.item
    if item.item_type == ItemType.GROUP_TICKET:
        pax = mapping.unit_of(item).pax
        lines = tuple(
            services.LineInput(item_code=item.item_id, quantity=pax, visit_date=choice.visit_date,
                               visit_time=choice.visit_time)
            for _ in choice.unit_items
        )
    else:
        lines = (services.LineInput(item_code=item.item_id, quantity=len(choice.unit_items),
                                    visit_date=choice.visit_date, visit_time=choice.visit_time),)
    return services.OrderInput(sell_to_order_reference=reference, lines=lines, customer=customer)


def unit_item_rows(unit_items: tuple[UnitItemInput, ...]) -> list[dict[str, Any]]:
    return [
        {"uuid": str(u.uuid or uuid.uuid4()), "unitId": u.unit_id, "resellerReference": u.reseller_reference}
        for u in unit_items
    ]


def _domain_error(error: DomainError) -> OctoError:
    if isinstance(error, ValidationFailed):
        fields = [e.get("field", "") for e in error.errors or []]
        if any(f.endswith("visitDate") for f in fields):
            return OctoError(INVALID_AVAILABILITY_ID, error.message)
        return OctoError(BAD_REQUEST, error.message)
    if isinstance(error, OrderNotFound):
        return OctoError(INVALID_BOOKING_UUID, "No such booking.")
    if isinstance(error, InvalidState | AlreadyRedeemed):
        return OctoError(UNPROCESSABLE_ENTITY, error.message)
    return OctoError(BAD_REQUEST, error.message)


def _refresh(booking: OctoBooking) -> BookingRecord:
    found = selectors.records([booking])
    if not found:
        raise OctoError(INVALID_BOOKING_UUID, "No such booking.", uuid=str(booking.uuid))
    return found[0]


def _settle_inline(*, order: Order, booking: OctoBooking, reserving: bool) -> None:
    """Issue the order now; past the bound, or when it cannot be issued, OCTO's error. A
    reservation that cannot be issued is withdrawn (its order deleted, leaving a tombstone)."""
    status = services.issue_inline(order=order, timeout_seconds=inline_seconds())
    if status is None:
        raise OctoError(
            UNPROCESSABLE_ENTITY,
            f"The booking is still being processed after {inline_seconds():g} s; GET /octo/bookings/"
            f"{booking.uuid} shows it once settled.",
            uuid=str(booking.uuid),
        )
    if status != OrderStatus.ERROR:
        return
    message = Order.objects.filter(pk=order.pk).values_list("status_message", flat=True).first() or "refused"
    if reserving:
        with transaction.atomic():
            services.delete_order(order=order, reason=f"OCTO reservation refused: {message}")
            OctoBooking.objects.filter(pk=booking.pk).delete()
    raise OctoError(UNPROCESSABLE_ENTITY, f"Cannot be booked: {message}")


def _hold_minutes(partner: Partner, requested: int | None) -> int | None:
    """The hold a reseller asks for, within its partnership's draftHoldMinutes (0: no limit)."""
    if requested is None:
        return None
    limit = partner.draft_hold_minutes
    return min(requested, limit) if limit else requested


def reserve(
    *, partner: Partner, booking_uuid: uuid.UUID | None, choice: Choice, customer: dict[str, Any] | None,
    reseller_reference: str | None, notes: str | None, expiration_minutes: int | None, livemode: bool = True,
) -> BookingRecord:
    """POST /octo/bookings: an order without paymentReference, issued inline, answered ON_HOLD.
    A uuid seen before (by this partner, in this mode) answers its booking as it stands (a
    retried reservation). `livemode` False (a test key) makes a test order on the test pool;
    uuids are the partner's own per mode, so a test uuid never meets a live booking."""
    if booking_uuid is not None:
        existing = OctoBooking.objects.filter(partner=partner, livemode=livemode, uuid=booking_uuid).first()
        if existing is not None:
            return _refresh(existing)
    booking_uuid = booking_uuid or uuid.uuid4()
    try:
        with transaction.atomic():
            order = services.create_order(
                partner=partner, livemode=livemode,
                order_input=order_input(reference=str(booking_uuid), choice=choice, customer=customer),
            )
            booking = OctoBooking.objects.create(
                uuid=booking_uuid, partner=partner, livemode=livemode, order_id=order.order_id,
                product_id=choice.item.item_id,
                availability_id=choice.availability_id, reseller_reference=reseller_reference, notes=notes,
                unit_items=unit_item_rows(choice.unit_items),
            )
    except DomainError as error:
        raise _domain_error(error) from None
    except IntegrityError:  # the same uuid reserved concurrently
        raise OctoError(BAD_REQUEST, "This uuid is taken; send another.", uuid=str(booking_uuid)) from None
    _settle_inline(order=order, booking=booking, reserving=True)
    minutes = _hold_minutes(partner, expiration_minutes)
    if minutes is not None:
        try:
            services.extend_hold(order=order, minutes=minutes)
        except DomainError as error:
            raise _domain_error(error) from None
    return _refresh(booking)


def _booking_or_error(record: BookingRecord) -> Order:
    if record.order is None:
        raise OctoError(UNPROCESSABLE_ENTITY, "The booking is cancelled.", uuid=str(record.booking.uuid))
    return record.order


def _units_changed(record: BookingRecord, unit_items: tuple[UnitItemInput, ...]) -> bool:
    before = Counter(u["unitId"] for u in record.booking.unit_items)
    return before != Counter(u.unit_id for u in unit_items)


def _rebook(*, record: BookingRecord, choice: Choice, customer: dict[str, Any] | None) -> None:
    """Replace the order's lines (replaceOrder) and issue it again inline: Draft, a new hold."""
    order = _booking_or_error(record)
    booking = record.booking
    try:
        with transaction.atomic():
            services.replace_order(
                order=order,
                order_input=order_input(reference=order.sell_to_order_reference, choice=choice, customer=customer),
            )
            booking.product_id = choice.item.item_id
            booking.availability_id = choice.availability_id
            booking.unit_items = unit_item_rows(choice.unit_items)
            booking.save(update_fields=["product_id", "availability_id", "unit_items"])
    except DomainError as error:
        raise _domain_error(error) from None
    _settle_inline(order=order, booking=booking, reserving=False)


def _current_choice(record: BookingRecord, unit_items: tuple[UnitItemInput, ...]) -> Choice:
    return choose(product_id=record.booking.product_id, option_id=mapping.OPTION_ID,
                  availability_id=record.booking.availability_id, unit_items=unit_items)


def _remap_unit_items(booking: OctoBooking, unit_items: tuple[UnitItemInput, ...]) -> None:
    """The same units under the reseller's uuids and references: nothing to issue again."""
    rows = []
    for old, new in zip(booking.unit_items, unit_items, strict=True):
        rows.append({
            "uuid": str(new.uuid) if new.uuid else old["uuid"],
            "unitId": new.unit_id,
            "resellerReference": new.reseller_reference if new.reseller_reference is not None
            else old.get("resellerReference"),
        })
    booking.unit_items = rows
    booking.save(update_fields=["unit_items"])


def confirm(
    *, record: BookingRecord, customer: dict[str, Any] | None, reseller_reference: str | None,
    unit_items: tuple[UnitItemInput, ...] | None,
) -> BookingRecord:
    """POST /octo/bookings/{uuid}/confirm: confirmOrder, after replacing the lines when the unit
    items changed and writing the contact. Answers CONFIRMED at once; a confirmed booking
    confirmed again is answered as it stands."""
    order = _booking_or_error(record)
    booking = record.booking
    status = booking_status(record)
    if status in (CONFIRMED, REDEEMED):
        if unit_items is not None and _units_changed(record, unit_items):
            raise OctoError(UNPROCESSABLE_ENTITY, "The booking is confirmed: its unit items cannot change.")
        return record
    if status == EXPIRED:
        raise OctoError(UNPROCESSABLE_ENTITY, "The booking's hold has expired.", uuid=str(booking.uuid))
    if unit_items is not None:
        if _units_changed(record, unit_items):
            _rebook(record=record, choice=_current_choice(record, unit_items), customer=customer or order.customer)
        else:
            _remap_unit_items(booking, unit_items)
    try:
        if customer is not None and customer != order.customer:
            services.update_customer(order=order, customer=customer)
        services.confirm_order(order=order, payment_reference=payment_reference(booking, reseller_reference))
    except DomainError as error:
        raise _domain_error(error) from None
    if reseller_reference is not None:
        booking.reseller_reference = reseller_reference
        booking.save(update_fields=["reseller_reference"])
    return _refresh(booking)


def payment_reference(booking: OctoBooking, reseller_reference: str | None) -> str:
    """OCTO has no payment reference: the reseller's reference stands for it, else the uuid."""
    return (reseller_reference or booking.reseller_reference or f"OCTO-{booking.uuid}")[:128]


def extend(*, record: BookingRecord, expiration_minutes: int | None) -> BookingRecord:
    """POST /octo/bookings/{uuid}/extend: the hold ends `expirationMinutes` from now (default:
    the partnership's draftHoldMinutes)."""
    order = _booking_or_error(record)
    partner = order.partner
    minutes = _hold_minutes(partner, expiration_minutes)
    if minutes is None:
        minutes = partner.draft_hold_minutes
    try:
        services.extend_hold(order=order, minutes=minutes)
    except InvalidState:
        raise OctoError(UNPROCESSABLE_ENTITY, "Only a booking ON_HOLD can be extended.",
                        uuid=str(record.booking.uuid)) from None
    except DomainError as error:
        raise _domain_error(error) from None
    return _refresh(record.booking)


def cancel(*, record: BookingRecord, reason: str | None) -> BookingRecord:
    """POST /octo/bookings/{uuid}/cancel: deleteOrder. A confirmed booking's order is Cancelled;
    an ON_HOLD (or expired) one's is deleted and read on through its tombstone. Cancelling a
    cancelled booking answers it unchanged."""
    booking = record.booking
    if record.order is None:
        return record
    try:
        with transaction.atomic():
            services.delete_order(order=record.order, reason=reason or "cancelled through OCTO")
            booking.cancellation_reason = reason
            booking.save(update_fields=["cancellation_reason"])
    except AlreadyRedeemed:
        raise OctoError(UNPROCESSABLE_ENTITY, "Tickets of this booking were used: it cannot be cancelled.",
                        uuid=str(booking.uuid)) from None
    except DomainError as error:
        raise _domain_error(error) from None
    return _refresh(booking)


def update(
    *, record: BookingRecord, body: dict[str, Any], customer: dict[str, Any] | None,
    reseller_reference: str | None, notes: str | None, unit_items: tuple[UnitItemInput, ...] | None,
    expiration_minutes: int | None,
) -> BookingRecord:
    """PATCH /octo/bookings/{uuid}, where our rules allow: references and notes always; the
    contact while ON_HOLD; product, availability or unit items by replacing the order (ON_HOLD,
    expired or rejected: re-issued inline, ON_HOLD again); the hold's end while ON_HOLD.
    A confirmed or cancelled booking changes nothing else: UNPROCESSABLE_ENTITY."""
    order = _booking_or_error(record)
    booking = record.booking
    rebook = any(field in body for field in ("productId", "optionId", "availabilityId")) or (
        unit_items is not None and _units_changed(record, unit_items)
    )
    try:
        if rebook:
            item = product(body.get("productId", booking.product_id))
            new_units = unit_items
            if new_units is None:
                if item.item_id != booking.product_id:
                    raise OctoError(BAD_REQUEST, "A new product needs its unitItems.")
                new_units = tuple(UnitItemInput(unit_id=u["unitId"]) for u in booking.unit_items)
            choice = choose(
                product_id=item.item_id, option_id=body.get("optionId", mapping.OPTION_ID),
                availability_id=body.get("availabilityId", booking.availability_id), unit_items=new_units,
            )
            if order.status not in (OrderStatus.DRAFT, OrderStatus.ERROR):
                raise OctoError(UNPROCESSABLE_ENTITY, "Only a booking on hold can change what it books.")
            _rebook(record=record, choice=choice, customer=customer if customer is not None else order.customer)
        elif unit_items is not None:
            _remap_unit_items(booking, unit_items)
        if customer is not None and not rebook and customer != order.customer:
            services.update_customer(order=order, customer=customer)
        if expiration_minutes is not None:
            services.extend_hold(order=order, minutes=_hold_minutes(order.partner, expiration_minutes))
    except DomainError as error:
        raise _domain_error(error) from None
    changed = []
    if "resellerReference" in body:
        booking.reseller_reference = reseller_reference
        changed.append("reseller_reference")
    if "notes" in body:
        booking.notes = notes
        changed.append("notes")
    if changed:
        booking.save(update_fields=changed)
    return _refresh(booking)
