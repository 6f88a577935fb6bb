"""Reads of OCTO bookings: the mapping row with its order (with contents) or, once the order was
deleted, its tombstone; a fixed number of queries for any number of bookings."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from catalog.models import Item
from catalog.selectors import items_by_code
from channel_manager.kernel.models import Partner
from channel_manager.octo.models import OctoBooking
from channel_manager.orders.models import DeletedOrder, Order, parse_buy_from_reference
from channel_manager.orders.selectors import orders_with_contents

MAX_LISTED = 100


@dataclass
class BookingRecord:
    booking: OctoBooking
    order: Order | None  # None once deleted: then `tombstone` tells what it was
    tombstone: DeletedOrder | None
    item: Item | None


def parse_uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def records(bookings: Iterable[OctoBooking]) -> list[BookingRecord]:
    bookings = list(bookings)
    if not bookings:
        return []
    order_ids = [b.order_id for b in bookings]
    orders = {o.order_id: o for o in orders_with_contents(Order.objects.filter(order_id__in=order_ids))}
    missing = [oid for oid in order_ids if oid not in orders]
    tombstones = {t.order_id: t for t in DeletedOrder.objects.filter(order_id__in=missing)} if missing else {}
    items = items_by_code({b.product_id for b in bookings})
    return [
        BookingRecord(b, orders.get(b.order_id), tombstones.get(b.order_id), items.get(b.product_id))
        for b in bookings
        if b.order_id in orders or b.order_id in tombstones  # a tombstone past its retention: gone
    ]


def get_booking(*, partner: Partner, booking_uuid: str, livemode: bool = True) -> BookingRecord | None:
    """The partner's own booking in the key's mode, or None (another partner's, or one of the
    other mode, is as absent as a missing one)."""
    parsed = parse_uuid(booking_uuid)
    if parsed is None:
        return None
    found = records(OctoBooking.objects.filter(partner=partner, livemode=livemode, uuid=parsed))
    return found[0] if found else None


def find_bookings(
    *, partner: Partner, reseller_reference: str | None = None, supplier_reference: str | None = None,
    livemode: bool = True,
) -> list[BookingRecord]:
    """The partner's bookings in the key's mode with that resellerReference and/or
    supplierReference (CM-…), newest first, at most MAX_LISTED."""
    queryset = OctoBooking.objects.filter(partner=partner, livemode=livemode)
    if reseller_reference is not None:
        queryset = queryset.filter(reseller_reference=reseller_reference)
    if supplier_reference is not None:
        pk = parse_buy_from_reference(supplier_reference)
        if pk is None or pk >= 2**63:  # no such order number (and none a bigint column could hold)
            return []
        live = Order.objects.filter(pk=pk, partner=partner, livemode=livemode).values_list("order_id", flat=True)
        gone = DeletedOrder.objects.filter(order_pk=pk, partner=partner, livemode=livemode).values_list(
            "order_id", flat=True
        )
        queryset = queryset.filter(order_id__in=[*live, *gone])
    return records(queryset.order_by("-id")[:MAX_LISTED])
