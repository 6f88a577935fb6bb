"""Load the catalog from its JSON file (format: API.md, "Catalog file").

The whole file is checked first and every problem is reported with its JSON path
(`items[3].timeSlots[0].time: must be HH:MM`); an invalid file changes nothing. A valid file is
applied in one transaction: the venue row is created or updated, items are upserted by itemId,
their time slots, package components and coupons are made to match the file, and items absent
from the file are left alone. Nothing is written that is already as the file says, so loading the
same file twice changes nothing. A new capacityPerDay or slot capacity is carried over to the
existing capacity rows from the venue's today on, never below what those rows have sold.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import reduce
from operator import or_

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from catalog.models import (
    Capacity,
    Item,
    PackageComponent,
    PackageCoupon,
    TimeSlot,
    Venue,
)
from catalog.parsing import parse_catalog
from catalog.selectors import clear_catalog_cache, clear_venue_cache
from catalog.specs import ItemSpec, LoadResult, VenueSpec

# --------------------------------------------------------------------------------------------
# Applying a valid file
# --------------------------------------------------------------------------------------------


def load_catalog(*, text: str | bytes, today: dt.date | None = None, dry_run: bool = False) -> LoadResult:
    """Validate the file and bring the catalog in line with it, in one transaction.

    `today` (default: the venue's today, in the file's time zone when it names one) is the first
    visit date whose capacity rows take a changed capacity. With `dry_run` everything is
    rolled back and the result tells what would have changed.
    """
    result = LoadResult(dry_run=dry_run)
    try:
        with transaction.atomic():
            spec = parse_catalog(text)
            result.venue = _apply_venue(spec.venue)
            if today is None:
                today = _venue_today(spec.venue)
            capacity_changes = _apply_items(spec.items, result)
            _propagate_capacity(capacity_changes, today, result)
            if dry_run:
                transaction.set_rollback(True)
    finally:
        clear_venue_cache()
        clear_catalog_cache()
    return result


def _venue_today(venue: VenueSpec | None) -> dt.date:
    if venue is not None:
        name = venue.time_zone
    else:
        row = Venue.objects.order_by("pk").first()
        name = row.time_zone if row else settings.VENUE_TIME_ZONE
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo(settings.VENUE_TIME_ZONE)
    return timezone.now().astimezone(zone).date()


def _apply_venue(venue: VenueSpec | None) -> str:
    if venue is None:
        return "absent"
    row = Venue.objects.select_for_update().order_by("pk").first()
    if row is None:
        Venue.objects.create(name=venue.name, time_zone=venue.time_zone, currency=venue.currency)
        return "created"
    wanted = {"name": venue.name, "time_zone": venue.time_zone, "currency": venue.currency}
    changed = [name for name, value in wanted.items() if getattr(row, name) != value]
    if not changed:
        return "unchanged"
    for name in changed:
        setattr(row, name, wanted[name])
    row.save(update_fields=[*changed, "updated_at"])
    return "updated"


# (item pk, visit_time or None for the per-day capacity) -> new capacity, for the rows from today
CapacityChanges = dict[tuple[int, dt.time | None], int | None]


def _apply_items(specs: list[ItemSpec], result: LoadResult) -> CapacityChanges:
    codes = [s.item_id for s in specs]
    existing = {
        item.item_id: item
        # no_key: lock out a concurrent load_catalog, not the reservations (which insert
        # capacity rows and so take KEY SHARE locks on their items).
        for item in Item.objects.select_for_update(of=("self",), no_key=True)
        .filter(item_id__in=codes)
        .order_by("pk")
        .prefetch_related(
            Prefetch("time_slots", queryset=TimeSlot.objects.order_by("time")),
            Prefetch(
                "components",
                queryset=PackageComponent.objects.select_related("component").order_by("position", "pk"),
            ),
            Prefetch("coupons", queryset=PackageCoupon.objects.order_by("position", "pk")),
        )
    }
    changes: CapacityChanges = {}
    items: dict[str, Item] = {}
    status: dict[str, str] = {}
    for spec in specs:
        item = existing.get(spec.item_id)
        wanted = spec.fields()
        if item is None:
            items[spec.item_id] = Item.objects.create(item_id=spec.item_id, **wanted)
            status[spec.item_id] = "created"
            continue
        items[spec.item_id] = item
        changed = [name for name, value in wanted.items() if getattr(item, name) != value]
        if "capacity_per_day" in changed:
            changes[(item.pk, None)] = spec.capacity_per_day
        for name in changed:
            setattr(item, name, wanted[name])
        if changed:
            item.save(update_fields=[*changed, "updated_at"])
            status[spec.item_id] = "updated"
        else:
            status[spec.item_id] = "unchanged"

    component_ids = {code for spec in specs for code in spec.components}
    by_code = dict(items)
    missing = component_ids - by_code.keys()
    if missing:
        by_code.update({i.item_id: i for i in Item.objects.filter(item_id__in=missing)})

    for spec in specs:
        item = items[spec.item_id]
        is_new = status[spec.item_id] == "created"
        touched = _sync_slots(item, spec, is_new, changes)
        touched |= _sync_components(item, spec, is_new, by_code)
        touched |= _sync_coupons(item, spec, is_new)
        if touched and status[spec.item_id] == "unchanged":
            item.save(update_fields=["updated_at"])
            status[spec.item_id] = "updated"

    for value in status.values():
        setattr(result, value, getattr(result, value) + 1)
    return changes


def _sync_slots(item: Item, spec: ItemSpec, is_new: bool, changes: CapacityChanges) -> bool:
    current = {} if is_new else {slot.time: slot for slot in item.time_slots.all()}
    wanted = {slot.time: slot.capacity for slot in spec.time_slots}
    gone = [slot.pk for t, slot in current.items() if t not in wanted]
    new = [TimeSlot(item=item, time=t, capacity=cap) for t, cap in wanted.items() if t not in current]
    altered = []
    for t, slot in current.items():
        if t in wanted and slot.capacity != wanted[t]:
            slot.capacity = wanted[t]
            altered.append(slot)
            changes[(item.pk, t)] = wanted[t]
    if gone:
        TimeSlot.objects.filter(pk__in=gone).delete()
    if new:
        TimeSlot.objects.bulk_create(new)
    if altered:
        TimeSlot.objects.bulk_update(altered, ["capacity"])
    return bool(gone or new or altered)


def _sync_components(item: Item, spec: ItemSpec, is_new: bool, by_code: dict[str, Item]) -> bool:
    current = [] if is_new else [(pc.component.item_id, pc.position) for pc in item.components.all()]
    wanted = [(code, position) for position, code in enumerate(spec.components)]
    if current == wanted:
        return False
    if current:
        PackageComponent.objects.filter(package=item).delete()
    PackageComponent.objects.bulk_create(
        [PackageComponent(package=item, component=by_code[code], position=pos) for code, pos in wanted]
    )
    return True


def _sync_coupons(item: Item, spec: ItemSpec, is_new: bool) -> bool:
    current = [] if is_new else [(c.code, c.description, c.valid_days, c.position) for c in item.coupons.all()]
    wanted = [(c.code, c.description, c.valid_days, pos) for pos, c in enumerate(spec.coupons)]
    if current == wanted:
        return False
    if current:
        PackageCoupon.objects.filter(package=item).delete()
    PackageCoupon.objects.bulk_create(
        [
            PackageCoupon(package=item, code=code, description=description, valid_days=days, position=pos)
            for code, description, days, pos in wanted
        ]
    )
    return True


def _propagate_capacity(changes: CapacityChanges, today: dt.date, result: LoadResult) -> None:
    """Give the capacity rows from `today` on their new capacity, never below what they sold.

    The rows are locked in the order reservations lock them (item, date, time).
    """
    if not changes:
        return
    conditions = [
        Q(item_id=item_pk, visit_time=visit_time)
        if visit_time is not None
        else Q(item_id=item_pk, visit_time__isnull=True)
        for item_pk, visit_time in changes
    ]
    rows = list(
        Capacity.objects.select_for_update(of=("self",))
        .filter(reduce(or_, conditions), visit_date__gte=today)
        .select_related("item")
        .order_by("item_id", "visit_date", "visit_time", "livemode")
    )
    now = timezone.now()
    altered = []
    for row in rows:
        capacity = changes[(row.item_id, row.visit_time)]
        if capacity is not None and capacity < row.sold:
            when = row.visit_date.isoformat() + (f" {row.visit_time:%H:%M}" if row.visit_time else "")
            when += "" if row.livemode else " (test pool)"
            result.warnings.append(
                f"{row.item.item_id} on {when}: {row.sold} already sold, more than the new "
                f"capacity {capacity}; its capacity is set to {row.sold}"
            )
            capacity = row.sold
        if row.capacity != capacity:
            row.capacity = capacity
            row.updated_at = now
            altered.append(row)
    if altered:
        Capacity.objects.bulk_update(altered, ["capacity", "updated_at"])
    result.capacity_rows_updated = len(altered)
