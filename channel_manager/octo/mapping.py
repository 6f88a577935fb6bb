"""How the catalog reads in OCTO (README, "OCTO"): each active item is a product with one
option, DEFAULT, and one unit; its availability comes from catalog.availability, the same
capacity rows and status words as the partner API's.

- ticket: unit UNIT (paxCount 1); group ticket: unit GROUP whose paxCount is the item's
  maxGroupSize (one unit item books one group of that size); package: unit UNIT.
- A timed item is a START_TIME product (its slots); an untimed item an OPENING_HOURS product (one
  availability per day). A package is START_TIME when exactly one of its components is timed
  (that component's slots), OPENING_HOURS when none is. Not offered: packages with several timed
  components (one availability cannot name several times) and group tickets without a
  maxGroupSize (a unit needs a size).
- availabilityId is the slot's (or the day's) local start as OCTO writes it,
  e.g. 2026-12-24T19:30:00+01:00: stable, and readable on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from catalog.availability import Status, item_availability, status_for
from catalog.models import Item, ItemType
from catalog.selectors import get_venue
from channel_manager.kernel.dates import in_calendar
from channel_manager.kernel.formats import hhmm
from wallets.contents import is_timed

OPTION_ID = "DEFAULT"
UNIT_ID = "UNIT"
GROUP_UNIT_ID = "GROUP"
START_TIME = "START_TIME"
OPENING_HOURS = "OPENING_HOURS"
OPEN_STATUSES = frozenset({Status.AVAILABLE, Status.LIMITED, Status.FREESALE})


@dataclass(frozen=True)
class Unit:
    id: str
    pax: int  # people one unit item admits


@dataclass(frozen=True)
class Slot:
    """One availability of a product: a start time on a date (a day for OPENING_HOURS)."""

    visit_date: dt.date
    visit_time: dt.time | None
    capacity: int | None
    remaining: int | None
    status: Status


def timed_component(item: Item) -> Item | None:
    """A package's one timed component (None when it has none)."""
    timed = [link.component for link in item.components.all() if is_timed(link.component)]
    return timed[0] if len(timed) == 1 else None


def offered(item: Item) -> bool:
    """Whether the item can be said as an OCTO product at all."""
    if not item.active:
        return False
    if item.item_type == ItemType.GROUP_TICKET:
        return bool(item.max_group_size)
    if item.item_type == ItemType.PACKAGE:
        return sum(1 for link in item.components.all() if is_timed(link.component)) <= 1
    return True


def unit_of(item: Item) -> Unit:
    if item.item_type == ItemType.GROUP_TICKET:
        return Unit(GROUP_UNIT_ID, item.max_group_size or 1)
    return Unit(UNIT_ID, 1)


def slot_times(item: Item) -> list[dt.time]:
    """The start times of a START_TIME product; [] for OPENING_HOURS."""
    source = timed_component(item) if item.item_type == ItemType.PACKAGE else item
    if source is None or not is_timed(source):
        return []
    return [slot.time for slot in source.time_slots.all()]


def availability_type(item: Item) -> str:
    return START_TIME if slot_times(item) else OPENING_HOURS


def freesale(item: Item) -> bool:
    """No capacity limit on any of what the product sells."""
    counted = [link.component for link in item.components.all()] if item.item_type == ItemType.PACKAGE else [item]
    for each in counted:
        slots = list(each.time_slots.all())
        limits = [slot.capacity for slot in slots] if slots else [each.capacity_per_day]
        if any(limit is not None for limit in limits):
            return False
    return True


# --------------------------------------------------------------------------------------------
# availabilityId
# --------------------------------------------------------------------------------------------


def local_start(visit_date: dt.date, visit_time: dt.time | None) -> dt.datetime:
    return dt.datetime.combine(visit_date, visit_time or dt.time.min, tzinfo=get_venue().tzinfo)


def availability_id(visit_date: dt.date, visit_time: dt.time | None) -> str:
    """The slot's local start as OCTO writes it (ISO 8601 with the venue's offset)."""
    return local_start(visit_date, visit_time).isoformat()


def parse_availability_id(item: Item, value: object) -> tuple[dt.date, dt.time | None] | None:
    """(visit date, visit time) of one of the product's availabilities, or None when `value`
    names none: not an ISO 8601 instant, or not one of its start times (midnight for
    OPENING_HOURS)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if instant.tzinfo is None or not in_calendar(instant.date()):
        return None
    try:
        local = instant.astimezone(get_venue().tzinfo)
    except (OverflowError, ValueError):
        return None
    times = slot_times(item)
    if times:
        return (local.date(), local.time()) if local.time() in times else None
    return (local.date(), None) if local.time() == dt.time.min else None


# --------------------------------------------------------------------------------------------
# Availability, from catalog.availability
# --------------------------------------------------------------------------------------------


def product_slots(item: Item, *, date_from: dt.date, date_to: dt.date, livemode: bool = True) -> list[Slot]:
    """The product's availabilities from `date_from` to `date_to` (inclusive, at most
    catalog.availability.MAX_RANGE_DAYS dates), in date then time order; `livemode` False reads
    the test pool (a test key's view, as in the partner API).

    Tickets and group tickets: the item's entries as they are. A package with a timed component:
    per slot of that component, the package's day figures (its scarcest component) met with the
    slot's own (whichever has less left), CLOSED when either is."""
    entries = item_availability(item_code=item.item_id, date_from=date_from, date_to=date_to, livemode=livemode).entries
    timed = timed_component(item) if item.item_type == ItemType.PACKAGE else None
    if timed is None:
        return [Slot(e.visit_date, e.visit_time, e.capacity, e.remaining, e.status) for e in entries]
    days = {e.visit_date: e for e in entries}
    component = item_availability(
        item_code=timed.item_id, date_from=date_from, date_to=date_to, livemode=livemode
    ).entries
    slots = []
    for entry in component:
        day = days[entry.visit_date]
        if Status.CLOSED in (day.status, entry.status):
            slots.append(Slot(entry.visit_date, entry.visit_time, entry.capacity, 0, Status.CLOSED))
            continue
        candidates = [(c, r) for c, r in ((day.capacity, day.remaining), (entry.capacity, entry.remaining))
                      if r is not None]
        capacity, remaining = min(candidates, key=lambda f: f[1]) if candidates else (None, None)
        slots.append(Slot(entry.visit_date, entry.visit_time, capacity, remaining,
                          status_for(capacity=capacity, remaining=remaining)))
    return slots


def calendar_day(slots: Iterable[Slot]) -> Slot:
    """A day of the calendar from its slots: their vacancies and capacities summed (no limit
    when any slot has none), the status of the sum when some slot is open."""
    slots = list(slots)
    day = slots[0].visit_date
    open_slots = [s for s in slots if s.status != Status.CLOSED]
    if not open_slots:
        return Slot(day, None, sum(s.capacity or 0 for s in slots) or None, 0, Status.CLOSED)
    if any(s.capacity is None or s.remaining is None for s in open_slots):
        return Slot(day, None, None, None, Status.FREESALE)
    capacity = sum(s.capacity or 0 for s in open_slots)
    remaining = sum(s.remaining or 0 for s in open_slots)
    return Slot(day, None, capacity, remaining, status_for(capacity=capacity, remaining=remaining))


def cutoff(visit_date: dt.date) -> dt.datetime:
    """When sales of a visit date close: issuance takes any date that is not yet past, so the
    end of the visit day at the venue."""
    return dt.datetime.combine(visit_date + dt.timedelta(days=1), dt.time.min, tzinfo=get_venue().tzinfo)


def start_time_words(item: Item) -> list[str]:
    """Option.availabilityLocalStartTimes: HH:MM of each start (00:00 for OPENING_HOURS)."""
    return [hhmm(t) for t in slot_times(item)] or ["00:00"]
