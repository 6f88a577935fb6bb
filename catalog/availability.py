"""Reads for partners: the catalog listing and the capacity left per visit date (and slot).

The figures are the ones issuance will meet: the same Capacity rows (one per item, visit date and
slot, made lazily by catalog.services.reserve_capacity, which copies the item's capacityPerDay or
the slot's capacity), counted the same way (`sold` holds every issued, Draft or not yet released
ticket; cancelling or replacing an order gives its places back to `sold`). Where no row exists yet,
the capacity is what reserve_capacity would give the row it makes, and nothing is sold.

Both reads take a fixed number of queries, whatever the number of items or dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import Max, Prefetch

from catalog.models import Capacity, Item, ItemType, PackageComponent, PackageCoupon, TimeSlot, Venue
from catalog.selectors import get_venue, items_by_code, venue_today

MAX_RANGE_DAYS = 92
ITEM_ID_MAX_LENGTH = Item._meta.get_field("item_id").max_length


class Status(StrEnum):
    AVAILABLE = "AVAILABLE"
    LIMITED = "LIMITED"  # under half of the capacity left
    SOLD_OUT = "SOLD_OUT"
    CLOSED = "CLOSED"  # not on sale: inactive, outside the sale window, or in the past
    FREESALE = "FREESALE"  # no capacity limit


@dataclass(frozen=True)
class Entry:
    """One visit date (and slot) of an item. `remaining` is what issuance would still accept:
    None for no limit, 0 when the entry is CLOSED."""

    visit_date: dt.date
    visit_time: dt.time | None
    capacity: int | None
    remaining: int | None
    status: Status


@dataclass(frozen=True)
class ItemAvailability:
    item: Item
    entries: list[Entry]
    last_modified: dt.datetime


@dataclass(frozen=True)
class CatalogListing:
    items: list[Item]
    currency: str
    last_modified: dt.datetime | None


# --------------------------------------------------------------------------------------------
# The catalog
# --------------------------------------------------------------------------------------------


def catalog_listing() -> CatalogListing:
    """The active items by itemId, with their ordered components (and component items), coupons
    and time slots; the venue's currency; and when any of it last changed.

    Six queries at most: the items, components, coupons, slots, the newest item and venue change
    (an inactive item's change counts too: deactivating one changes the listing), and the venue
    when its per-process cache has expired.
    """
    items = list(
        Item.objects.filter(active=True)
        .order_by("item_id")
        .prefetch_related(
            Prefetch(
                "components",
                queryset=PackageComponent.objects.select_related("component").order_by("position", "pk"),
            ),
            Prefetch("coupons", queryset=PackageCoupon.objects.order_by("position", "pk")),
            Prefetch("time_slots", queryset=TimeSlot.objects.order_by("time")),
        )
    )
    newest_item = Item.objects.aggregate(newest=Max("updated_at"))["newest"]
    newest_venue = Venue.objects.aggregate(newest=Max("updated_at"))["newest"]
    return CatalogListing(
        items=items,
        currency=get_venue().currency,
        last_modified=_newest([newest_item, newest_venue]),
    )


# --------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------

Figures = tuple[int | None, int | None]  # (capacity, remaining); (None, None) is no limit
RowKey = tuple[int, dt.date, dt.time | None]


def item_availability(
    *, item_code: str, date_from: dt.date, date_to: dt.date, livemode: bool = True
) -> ItemAvailability | None:
    """Availability of the item per visit date from `date_from` to `date_to` (inclusive), in date
    then time order; None when no item has that itemId (active or not).

    - A ticket or group ticket: one entry per date when untimed, per date and slot when timed.
    - A package: one entry per date (visitTime None). Its components share the date; a timed
      component counts with its slot that has the most left (the partner picks the slot in
      componentSchedule). The package has what its scarcest component has: `remaining` is the
      least among the components with a limit, `capacity` that component's (slot's) capacity;
      FREESALE when no component has a limit.
    - `livemode` False reads the test pool (API.md, "Test mode"): test orders' rows only.
    - CLOSED (remaining 0) when the item (for a package: the package or any component) is inactive
      or not on sale on the date, or the date is before the venue's today.

    Four or five queries whatever the range: the item with its components, coupons and slots
    (as issuance reads them), the Capacity rows of the range, and the venue when not cached.
    """
    if date_to < date_from or (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise ValueError(f"a range of 1 to {MAX_RANGE_DAYS} dates is required")
    if not item_code or len(item_code) > ITEM_ID_MAX_LENGTH or "\x00" in item_code:
        return None
    item = items_by_code([item_code]).get(item_code)
    if item is None:
        return None
    today = venue_today()
    dates = [date_from + dt.timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    is_package = item.item_type == ItemType.PACKAGE
    components = [link.component for link in item.components.all()] if is_package else []
    counted = components if is_package else [item]
    rows = _capacity_rows(items=counted, date_from=date_from, date_to=date_to, livemode=livemode)

    entries: list[Entry] = []
    for day in dates:
        if is_package:
            on_sale = _sellable(item, day, today) and all(_sellable(c, day, today) for c in components)
            capacity, remaining = _package_figures(components, day, rows)
            entries.append(_entry(day, None, capacity, remaining, on_sale=on_sale))
        else:
            on_sale = _sellable(item, day, today)
            for visit_time, capacity, remaining in _slot_figures(item, day, rows):
                entries.append(_entry(day, visit_time, capacity, remaining, on_sale=on_sale))

    stamps = [item.updated_at, *(c.updated_at for c in components), *(r.updated_at for r in rows.values())]
    stamps.append(_last_day_turnover(date_from=date_from, date_to=date_to, today=today))
    return ItemAvailability(item=item, entries=entries, last_modified=_newest(stamps))


def status_for(*, capacity: int | None, remaining: int | None) -> Status:
    """The status of an entry that is on sale."""
    if capacity is None or remaining is None:
        return Status.FREESALE
    if remaining <= 0:
        return Status.SOLD_OUT
    if remaining * 2 < capacity:
        return Status.LIMITED
    return Status.AVAILABLE


def _entry(day: dt.date, visit_time: dt.time | None, capacity: int | None, remaining: int | None, *,
           on_sale: bool) -> Entry:
    if not on_sale:
        return Entry(day, visit_time, capacity, 0, Status.CLOSED)
    return Entry(day, visit_time, capacity, remaining, status_for(capacity=capacity, remaining=remaining))


def _sellable(item: Item, day: dt.date, today: dt.date) -> bool:
    """What issuance checks before capacity (its _check_sellable; the catalog does not import it)."""
    return item.active and day >= today and item.on_sale(day)


def _capacity_rows(
    *, items: list[Item], date_from: dt.date, date_to: dt.date, livemode: bool
) -> dict[RowKey, Capacity]:
    """The Capacity rows of the items in the range and mode, by (item pk, date, time); one query."""
    if not items:
        return {}
    rows = Capacity.objects.filter(
        item_id__in=[i.pk for i in items], visit_date__gte=date_from, visit_date__lte=date_to, livemode=livemode
    ).only("pk", "item_id", "visit_date", "visit_time", "capacity", "sold", "updated_at")
    return {(row.item_id, row.visit_date, row.visit_time): row for row in rows}


def _slot_figures(item: Item, day: dt.date, rows: dict[RowKey, Capacity]) -> list[tuple[dt.time | None, int | None,
                                                                                          int | None]]:
    """(visit time, capacity, remaining) per slot of the item on the day, in time order; one
    (None, …) entry for an untimed item. The keys are the ones reserve_capacity claims."""
    slots = item.time_slots.all()
    keys = [(slot.time, slot.capacity) for slot in slots] if slots else [(None, item.capacity_per_day)]
    figures = []
    for visit_time, initial in keys:
        row = rows.get((item.pk, day, visit_time))
        if row is None:
            figures.append((visit_time, initial, initial))
        else:
            figures.append((visit_time, row.capacity, row.remaining))
    return figures


def _component_figures(component: Item, day: dt.date, rows: dict[RowKey, Capacity]) -> Figures:
    """The component's best slot on the day: unlimited when any slot is, else the slot with the
    most left (the earliest of equals)."""
    best: Figures | None = None
    for _, capacity, remaining in _slot_figures(component, day, rows):
        if capacity is None or remaining is None:
            return (None, None)
        if best is None or remaining > best[1]:
            best = (capacity, remaining)
    return best or (None, None)


def _package_figures(components: Iterable[Item], day: dt.date, rows: dict[RowKey, Capacity]) -> Figures:
    """The scarcest limited component's figures (the first in package order among equals)."""
    scarcest: Figures = (None, None)
    for component in components:
        capacity, remaining = _component_figures(component, day, rows)
        if capacity is None or remaining is None:
            continue
        if scarcest[1] is None or remaining < scarcest[1]:
            scarcest = (capacity, remaining)
    return scarcest


def _last_day_turnover(*, date_from: dt.date, date_to: dt.date, today: dt.date) -> dt.datetime | None:
    """The latest venue midnight at which a date of the range became past (its entries CLOSED),
    since that changes the answer without changing any row."""
    if today <= date_from:
        return None
    day = today if date_to >= today else date_to + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.min, tzinfo=get_venue().tzinfo)


def _newest(stamps: Iterable[dt.datetime | None]) -> dt.datetime | None:
    present = [s for s in stamps if s is not None]
    return max(present) if present else None
