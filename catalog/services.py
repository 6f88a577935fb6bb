"""Capacity: reserve and release places on (item, visit date, slot) rows.

Callers run these inside their own transaction.atomic(); the rows stay locked until it ends,
so concurrent issuance can never oversell (the check constraint on Capacity is the last guard).
Rows are locked in one global order (item, visit date, visit time), which keeps two
transactions from waiting on each other. The number of queries does not depend on the number
of claims: reserve takes 4, release 2.

These functions check capacity only. Whether an item is active, on sale on the date, or the
slot is valid for a package component is for issuance to check (and to phrase) first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from catalog.loading import load_catalog
from catalog.models import Capacity, Item
from catalog.specs import CatalogInvalid
from channel_manager.kernel.errors import Conflict, ValidationFailed

CapacityKey = tuple[int, dt.date, dt.time | None, bool]  # item, date, slot, livemode


@dataclass(frozen=True)
class CapacityClaim:
    item_pk: int
    visit_date: dt.date
    visit_time: dt.time | None  # None for untimed items
    quantity: int
    # False: the test pool (API.md, "Test mode"), rows of their own beside the live ones.
    livemode: bool = True

    @property
    def key(self) -> CapacityKey:
        return (self.item_pk, self.visit_date, self.visit_time, self.livemode)


class CapacityExceeded(Conflict):
    """A claim asked for more than is left (a domain error: the places are not there now).

    `claim` is the caller's claim at which the total for its (item, date, slot) first went over;
    `capacity` is that row's capacity and `remaining` what was left for this claim (after the
    row's sold count and any earlier claims of the same call on the same row).
    """

    code = "capacity_exceeded"

    def __init__(self, *, claim: CapacityClaim, capacity: int, remaining: int) -> None:
        self.claim = claim
        self.capacity = capacity
        self.remaining = remaining
        super().__init__(
            f"item {claim.item_pk} on {claim.visit_date.isoformat()}"
            + (f" at {claim.visit_time:%H:%M}" if claim.visit_time else "")
            + f": {claim.quantity} requested, {remaining} of {capacity} left"
        )


def _sort_key(key: CapacityKey) -> tuple[int, dt.date, dt.time, bool]:
    # Per item the times are either all None (untimed) or all set, so time.min never collides.
    # The database's order of the lock query (False before True) for the mode.
    return (key[0], key[1], key[2] or dt.time.min, key[3])


def _require_atomic() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("capacity must be reserved or released inside transaction.atomic()")


def _merge(claims: Iterable[CapacityClaim]) -> tuple[list[CapacityClaim], dict[CapacityKey, int]]:
    """The claims as a list (caller's order) and the total quantity per key (first-seen order)."""
    claim_list = list(claims)
    totals: dict[CapacityKey, int] = {}
    for claim in claim_list:
        if isinstance(claim.quantity, bool) or not isinstance(claim.quantity, int) or claim.quantity < 1:
            raise ValueError(f"claim quantity must be a positive integer: {claim!r}")
        totals[claim.key] = totals.get(claim.key, 0) + claim.quantity
    return claim_list, totals


def _key_filter(keys: Iterable[CapacityKey]) -> Q:
    conditions = [
        Q(item_id=item_pk, visit_date=visit_date, visit_time=visit_time, livemode=livemode)
        if visit_time is not None
        else Q(item_id=item_pk, visit_date=visit_date, visit_time__isnull=True, livemode=livemode)
        for item_pk, visit_date, visit_time, livemode in keys
    ]
    return reduce(or_, conditions)


def _lock_rows(keys: Iterable[CapacityKey]) -> dict[CapacityKey, Capacity]:
    """Lock the Capacity rows of the keys, in the global order; one query."""
    rows = (
        Capacity.objects.select_for_update()
        .filter(_key_filter(keys))
        .order_by("item_id", "visit_date", "visit_time", "livemode")
        .only("pk", "item_id", "visit_date", "visit_time", "livemode", "capacity", "sold")
    )
    return {(row.item_id, row.visit_date, row.visit_time, row.livemode): row for row in rows}


def _initial_capacities(keys: Iterable[CapacityKey]) -> dict[CapacityKey, int | None]:
    """The capacity a new row for each key starts with; one query. ValueError for a key that
    names no item, a slot the item does not have, or a time on an untimed item."""
    keys = list(keys)
    item_pks = {k[0] for k in keys}
    per_day: dict[int, int | None] = {}
    slots: dict[int, dict[dt.time, int | None]] = {}
    rows = (
        Item.objects.filter(pk__in=item_pks)
        .order_by()
        .values_list("pk", "capacity_per_day", "time_slots__time", "time_slots__capacity")
    )
    for pk, capacity_per_day, slot_time, slot_capacity in rows:
        per_day[pk] = capacity_per_day
        item_slots = slots.setdefault(pk, {})
        if slot_time is not None:
            item_slots[slot_time] = slot_capacity
    initial: dict[CapacityKey, int | None] = {}
    for key in keys:
        item_pk, _, visit_time, _ = key
        if item_pk not in per_day:
            raise ValueError(f"no item with pk {item_pk}")
        item_slots = slots[item_pk]
        if item_slots:
            if visit_time is None:
                raise ValueError(f"item {item_pk} is timed: a claim needs a visit_time")
            if visit_time not in item_slots:
                raise ValueError(f"item {item_pk} has no {visit_time:%H:%M} slot")
            initial[key] = item_slots[visit_time]
        else:
            if visit_time is not None:
                raise ValueError(f"item {item_pk} is untimed: a claim takes no visit_time")
            initial[key] = per_day[item_pk]
    return initial


def _add_to_sold(rows: dict[CapacityKey, Capacity], deltas: dict[CapacityKey, int]) -> None:
    """sold += delta per row (never below 0), in one UPDATE."""
    whens = [When(pk=rows[key].pk, then=Value(delta)) for key, delta in deltas.items() if delta]
    if not whens:
        return
    delta_expr = Case(*whens, default=Value(0), output_field=IntegerField())
    Capacity.objects.filter(pk__in=[rows[key].pk for key in deltas]).update(
        sold=Greatest(F("sold") + delta_expr, Value(0)), updated_at=timezone.now()
    )


def reserve_capacity(*, claims: Iterable[CapacityClaim]) -> None:
    """Take `quantity` places per claim, all or nothing, inside the caller's transaction.

    Claims on the same (item, date, slot) add up. A row is made on first use, its capacity
    copied from the item's capacityPerDay (untimed) or from the slot (timed); a capacity of
    None is freesale (always available, sold still counted). Raises CapacityExceeded naming the
    first claim, in the caller's order, that does not fit, and then changes nothing.
    """
    refused = reserve_capacity_groups(groups=[(None, claims)])
    if refused:
        raise refused[None]


def reserve_capacity_groups(
    *, groups: Sequence[tuple[Hashable, Sequence[CapacityClaim]]]
) -> dict[Hashable, CapacityExceeded]:
    """Reserve for many callers at once (e.g. a batch of orders), each group all or nothing,
    inside the caller's transaction; returns the groups that did not fit, with the exceeded
    claim as reserve_capacity would raise it for that group alone at that point.

    Groups are served in the order given (first come, first served); a group that does not fit
    takes nothing and does not stop the others. Every row involved is locked once, in the
    global order, and sold is updated in one UPDATE: the cost does not grow with the groups.
    """
    _require_atomic()
    merged = [(name, *_merge(claims)) for name, claims in groups]
    all_keys = {key for _, _, totals in merged for key in totals}
    if not all_keys:
        return {}
    ordered_keys = sorted(all_keys, key=_sort_key)
    initial = _initial_capacities(ordered_keys)
    Capacity.objects.bulk_create(
        [
            Capacity(
                item_id=key[0], visit_date=key[1], visit_time=key[2], livemode=key[3], capacity=initial[key], sold=0
            )
            for key in ordered_keys
        ],
        ignore_conflicts=True,
    )
    rows = _lock_rows(ordered_keys)
    granted: dict[CapacityKey, int] = {}  # taken by the groups served so far
    refused: dict[Hashable, CapacityExceeded] = {}
    for name, claim_list, totals in merged:
        taken: dict[CapacityKey, int] = {}
        for claim in claim_list:
            row = rows[claim.key]
            already = granted.get(claim.key, 0) + taken.get(claim.key, 0)
            if row.capacity is not None and row.sold + already + claim.quantity > row.capacity:
                refused[name] = CapacityExceeded(
                    claim=claim, capacity=row.capacity, remaining=max(row.capacity - row.sold - already, 0)
                )
                break
            taken[claim.key] = taken.get(claim.key, 0) + claim.quantity
        else:
            for key, quantity in totals.items():
                granted[key] = granted.get(key, 0) + quantity
    _add_to_sold(rows, granted)
    return refused


def release_capacity(*, claims: Iterable[CapacityClaim]) -> None:
    """Give back the places of claims reserved earlier (sold never goes below 0).

    Claims on rows that do not exist are ignored: nothing was reserved there.
    """
    _require_atomic()
    _, totals = _merge(claims)
    if not totals:
        return
    rows = _lock_rows(sorted(totals, key=_sort_key))
    _add_to_sold(rows, {key: -qty for key, qty in totals.items() if key in rows})


# --------------------------------------------------------------------------------------------
# Staff edits (the admin): one item, or the venue, under the catalog file's rules
# --------------------------------------------------------------------------------------------


def save_item(*, item: dict[str, Any], today: dt.date | None = None) -> tuple[Item, list[str]]:
    """Create or update one item with its time slots, package components and coupons, given as
    the catalog file gives an item (API.md, "Catalog file"), under the file's rules: a package
    component is a ticket, an item packages use stays a ticket, capacity only where it belongs.
    A changed capacity is carried over to the capacity rows from the venue's today on, never
    below what they sold (each such row is named in the warnings returned).

    Raises ValidationFailed with one error per problem, its field a path inside the item
    (`components[0].itemId`); then nothing changed."""
    try:
        result = load_catalog(text=json.dumps({"items": [item]}, cls=DjangoJSONEncoder), today=today)
    except CatalogInvalid as error:
        raise ValidationFailed([_problem(line, prefix="items[0]") for line in error.problems]) from None
    return Item.objects.get(item_id=item["itemId"]), result.warnings


def save_venue(*, name: str, time_zone: str, currency: str) -> None:
    """Create the venue row or change it, under the catalog file's rules (an IANA time zone, an
    ISO 4217 currency); ValidationFailed naming each problem otherwise."""
    document = {"venue": {"name": name, "timeZone": time_zone, "currency": currency}, "items": []}
    try:
        load_catalog(text=json.dumps(document))
    except CatalogInvalid as error:
        raise ValidationFailed([_problem(line, prefix="venue") for line in error.problems]) from None


def _problem(line: str, *, prefix: str) -> dict[str, str]:
    """A loader problem ("items[0].price: must be ...") as an error on a path inside the thing."""
    path, _, message = line.partition(": ")
    if path == prefix:
        path = ""
    elif path.startswith(prefix + "."):
        path = path[len(prefix) + 1:]
    return {"field": "" if path == "$" else path, "message": message}
