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
import json
import re
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, Q
from django.utils import timezone

from catalog.models import (
    Capacity,
    Item,
    ItemType,
    PackageComponent,
    PackageCoupon,
    TimeSlot,
    Venue,
)
from catalog.selectors import clear_catalog_cache, clear_venue_cache

MAX_INT = 2_147_483_647  # the largest value of the integer columns
MAX_PRICE = Decimal("9999999999.99")  # DecimalField(max_digits=12, decimal_places=2)
ITEM_TYPES = [t.value for t in ItemType]

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

_ROOT_FIELDS = {"venue", "items"}
_VENUE_FIELDS = {"name", "timeZone", "currency"}
_ITEM_FIELDS = {
    "itemId",
    "name",
    "type",
    "price",
    "active",
    "saleFrom",
    "saleUntil",
    "capacityPerDay",
    "timeSlots",
    "maxGroupSize",
    "components",
    "coupons",
}
_SLOT_FIELDS = {"time", "capacity"}
_COMPONENT_FIELDS = {"itemId"}
_COUPON_FIELDS = {"code", "description", "validDays"}


# --------------------------------------------------------------------------------------------
# What a valid file says
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueSpec:
    name: str
    time_zone: str
    currency: str


@dataclass(frozen=True)
class SlotSpec:
    time: dt.time
    capacity: int | None


@dataclass(frozen=True)
class CouponSpec:
    code: str
    description: str
    valid_days: int


@dataclass
class ItemSpec:
    item_id: str
    name: str
    item_type: str
    price: Decimal
    active: bool = True
    sale_from: dt.date | None = None
    sale_until: dt.date | None = None
    capacity_per_day: int | None = None
    max_group_size: int | None = None
    time_slots: list[SlotSpec] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # itemIds, in order
    coupons: list[CouponSpec] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "item_type": self.item_type,
            "price": self.price,
            "active": self.active,
            "sale_from": self.sale_from,
            "sale_until": self.sale_until,
            "capacity_per_day": self.capacity_per_day,
            "max_group_size": self.max_group_size,
        }


@dataclass
class CatalogSpec:
    venue: VenueSpec | None  # None: the file names no venue; the row is left as it is
    items: list[ItemSpec]


class CatalogInvalid(Exception):
    """The file has problems; `problems` lists each as "path: message"."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the catalog file:\n" + "\n".join(problems))


@dataclass
class LoadResult:
    venue: str = "unchanged"  # created, updated, unchanged, or absent (not in the file)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    capacity_rows_updated: int = 0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        prefix = "Dry run, nothing saved: " if self.dry_run else "Catalog loaded: "
        return (
            f"{prefix}venue {self.venue}; items {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged; {self.capacity_rows_updated} capacity rows updated"
            + (f"; {len(self.warnings)} warning(s)" if self.warnings else "")
            + "."
        )


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


class _JsonObject(dict):
    """A JSON object that remembers the keys it had more than once."""

    duplicate_keys: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    obj.duplicate_keys = []
    for key, value in pairs:
        if key in obj and key not in obj.duplicate_keys:
            obj.duplicate_keys.append(key)
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _path(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


class _Validator:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '$'}: {message}")

    # -- generic field checks; each returns the value, or None when absent or invalid ----------

    def object(self, value: Any, path: str, allowed: set[str]) -> dict | None:
        if not isinstance(value, dict):
            self.add(path, "must be an object")
            return None
        for key in getattr(value, "duplicate_keys", []):
            self.add(_path(path, key), "appears more than once")
        for key in value:
            if key not in allowed:
                self.add(_path(path, key), "unknown field")
        return value

    def string(self, obj: dict, key: str, path: str, *, max_length: int, required: bool) -> str | None:
        value = obj.get(key)
        where = _path(path, key)
        if value is None:
            if required:
                self.add(where, "is required")
            return None
        if not isinstance(value, str):
            self.add(where, "must be a string")
            return None
        if not value.strip() or len(value) > max_length or value != value.strip():
            self.add(where, f"must be 1-{max_length} characters, without surrounding spaces")
            return None
        return value

    def integer(self, obj: dict, key: str, path: str, *, minimum: int) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if not _is_int(value) or not minimum <= value <= MAX_INT:
            self.add(_path(path, key), f"must be an integer from {minimum} to {MAX_INT}")
            return None
        return value

    def date(self, obj: dict, key: str, path: str) -> dt.date | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, str) and _DATE_RE.fullmatch(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        self.add(_path(path, key), "must be a date YYYY-MM-DD")
        return None

    def list(self, obj: dict, key: str, path: str) -> list | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.add(_path(path, key), "must be a list")
            return None
        return value

    # -- the file ------------------------------------------------------------------------------

    def venue(self, value: Any, path: str) -> VenueSpec | None:
        obj = self.object(value, path, _VENUE_FIELDS)
        if obj is None:
            return None
        name = self.string(obj, "name", path, max_length=200, required=True)
        time_zone = self.string(obj, "timeZone", path, max_length=64, required=True)
        if time_zone is not None and not _valid_time_zone(time_zone):
            self.add(_path(path, "timeZone"), "must be an IANA time zone name such as Europe/Amsterdam")
            time_zone = None
        currency = obj.get("currency")
        if currency is None:
            self.add(_path(path, "currency"), "is required")
        elif not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
            self.add(
                _path(path, "currency"),
                "must be an ISO 4217 code of 3 capital letters, such as EUR",
            )
            currency = None
        if name is None or time_zone is None or currency is None:
            return None
        return VenueSpec(name=name, time_zone=time_zone, currency=currency)

    def item(self, value: Any, path: str) -> ItemSpec | None:
        obj = self.object(value, path, _ITEM_FIELDS)
        if obj is None:
            return None
        before = len(self.problems)
        item_id = self.string(obj, "itemId", path, max_length=64, required=True)
        name = self.string(obj, "name", path, max_length=200, required=True)

        item_type = obj.get("type")
        if item_type is None:
            self.add(_path(path, "type"), "is required")
        elif item_type not in ITEM_TYPES:
            self.add(_path(path, "type"), "must be one of " + ", ".join(ITEM_TYPES))
            item_type = None

        price = self.price(obj, path)

        active = obj.get("active", True)
        if active is None:
            active = True
        elif not isinstance(active, bool):
            self.add(_path(path, "active"), "must be true or false")

        sale_from = self.date(obj, "saleFrom", path)
        sale_until = self.date(obj, "saleUntil", path)
        if sale_from and sale_until and sale_from > sale_until:
            self.add(_path(path, "saleUntil"), "must not be before saleFrom")

        capacity_per_day = self.integer(obj, "capacityPerDay", path, minimum=0)
        slots = self.time_slots(obj, path)
        if obj.get("capacityPerDay") is not None and obj.get("timeSlots") is not None:
            self.add(
                _path(path, "capacityPerDay"),
                "not allowed together with timeSlots (each slot has its own capacity)",
            )

        max_group_size = self.integer(obj, "maxGroupSize", path, minimum=1)
        components = self.components(obj, path)
        coupons = self.coupons(obj, path)

        if item_type is not None:
            if obj.get("maxGroupSize") is not None and item_type != ItemType.GROUP_TICKET:
                self.add(_path(path, "maxGroupSize"), "only for items of type group_ticket")
            if item_type == ItemType.PACKAGE:
                for key in ("capacityPerDay", "timeSlots"):
                    if obj.get(key) is not None:
                        self.add(
                            _path(path, key),
                            "not for packages (a package's availability is its components')",
                        )
                if obj.get("components") is None or (isinstance(obj.get("components"), list) and not obj["components"]):
                    self.add(_path(path, "components"), "a package needs at least one component")
            else:
                for key in ("components", "coupons"):
                    if obj.get(key) is not None:
                        self.add(_path(path, key), "only for items of type package")

        if len(self.problems) > before:
            return None
        return ItemSpec(
            item_id=item_id,
            name=name,
            item_type=item_type,
            price=price,
            active=active,
            sale_from=sale_from,
            sale_until=sale_until,
            capacity_per_day=capacity_per_day,
            max_group_size=max_group_size,
            time_slots=slots or [],
            components=components or [],
            coupons=coupons or [],
        )

    def price(self, obj: dict, path: str) -> Decimal | None:
        value = obj.get("price")
        where = _path(path, "price")
        if value is None:
            self.add(where, "is required")
            return None
        amount: Decimal | None = None
        if isinstance(value, str) and value.strip() == value:
            try:
                amount = Decimal(value)
            except InvalidOperation:
                amount = None
        elif isinstance(value, Decimal) or _is_int(value):
            amount = Decimal(value)
        if amount is None or not amount.is_finite():
            self.add(where, 'must be a decimal string such as "49.50"')
            return None
        if amount < 0 or amount > MAX_PRICE:
            self.add(where, f"must be from 0 to {MAX_PRICE}")
            return None
        if amount != amount.quantize(Decimal("0.01")):
            self.add(where, "must have at most 2 decimal places")
            return None
        return amount.quantize(Decimal("0.01"))

    def time_slots(self, obj: dict, path: str) -> list[SlotSpec] | None:
        base = _path(path, "timeSlots")
        values = self.list(obj, "timeSlots", path)
        if values is None:
            return None
        if not values:
            self.add(base, "must list at least one slot (leave it out for an untimed item)")
            return None
        slots: list[SlotSpec] = []
        seen: set[dt.time] = set()
        for j, value in enumerate(values):
            at = f"{base}[{j}]"
            slot = self.object(value, at, _SLOT_FIELDS)
            if slot is None:
                continue
            raw = slot.get("time")
            if raw is None:
                self.add(_path(at, "time"), "is required")
                continue
            if not isinstance(raw, str) or not _TIME_RE.fullmatch(raw):
                self.add(_path(at, "time"), "must be HH:MM")
                continue
            slot_time = dt.time.fromisoformat(raw)
            if slot_time in seen:
                self.add(_path(at, "time"), f"{raw} is listed more than once")
                continue
            seen.add(slot_time)
            slots.append(SlotSpec(time=slot_time, capacity=self.integer(slot, "capacity", at, minimum=0)))
        return sorted(slots, key=lambda s: s.time)

    def components(self, obj: dict, path: str) -> list[str] | None:
        base = _path(path, "components")
        values = self.list(obj, "components", path)
        if values is None:
            return None
        codes: list[str] = []
        for j, value in enumerate(values):
            at = f"{base}[{j}]"
            component = self.object(value, at, _COMPONENT_FIELDS)
            if component is None:
                continue
            code = self.string(component, "itemId", at, max_length=64, required=True)
            if code is None:
                continue
            if code in codes:
                self.add(_path(at, "itemId"), f"{code} is already a component of this package")
                continue
            codes.append(code)
        return codes

    def coupons(self, obj: dict, path: str) -> list[CouponSpec] | None:
        base = _path(path, "coupons")
        values = self.list(obj, "coupons", path)
        if values is None:
            return None
        coupons: list[CouponSpec] = []
        codes: set[str] = set()
        for j, value in enumerate(values):
            at = f"{base}[{j}]"
            coupon = self.object(value, at, _COUPON_FIELDS)
            if coupon is None:
                continue
            code = self.string(coupon, "code", at, max_length=64, required=True)
            description = self.string(coupon, "description", at, max_length=255, required=True)
            valid_days = coupon.get("validDays")
            if valid_days is None:
                self.add(_path(at, "validDays"), "is required")
            else:
                valid_days = self.integer(coupon, "validDays", at, minimum=1)
            if code is not None and code in codes:
                self.add(_path(at, "code"), f"{code} is listed more than once in this package")
                continue
            if code is None or description is None or valid_days is None:
                continue
            codes.add(code)
            coupons.append(CouponSpec(code=code, description=description, valid_days=valid_days))
        return coupons


def _valid_time_zone(name: str) -> bool:
    available = zoneinfo.available_timezones()
    if available:
        return name in available
    try:  # no tz database to list: accept what zoneinfo can load
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_catalog(text: str | bytes) -> CatalogSpec:
    """Check the whole file; return what it says or raise CatalogInvalid with every problem.

    Components naming items not in the file are looked up in the database.
    """
    try:
        data = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_object_pairs,
        )
    except json.JSONDecodeError as exc:
        raise CatalogInvalid([f"$: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"]) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogInvalid([f"$: not valid JSON: {exc}"]) from exc

    v = _Validator()
    root = v.object(data, "", _ROOT_FIELDS)
    if root is None:
        raise CatalogInvalid(v.problems)
    venue = v.venue(root["venue"], "venue") if root.get("venue") is not None else None

    raw_items = root.get("items")
    items: list[ItemSpec | None] = []
    if raw_items is None:
        v.add("items", "is required")
    elif not isinstance(raw_items, list):
        v.add("items", "must be a list")
    else:
        items = [v.item(value, f"items[{i}]") for i, value in enumerate(raw_items)]
        _check_unique_ids(v, raw_items)
        _check_components(v, raw_items)
        _check_still_components(v, raw_items)

    if v.problems:
        raise CatalogInvalid(v.problems)
    return CatalogSpec(venue=venue, items=[i for i in items if i is not None])


def _raw_id(value: Any) -> str | None:
    item_id = value.get("itemId") if isinstance(value, dict) else None
    return item_id if isinstance(item_id, str) else None


def _raw_type(value: Any) -> str | None:
    item_type = value.get("type") if isinstance(value, dict) else None
    return item_type if item_type in ITEM_TYPES else None


def _check_unique_ids(v: _Validator, raw_items: list) -> None:
    first: dict[str, int] = {}
    for i, value in enumerate(raw_items):
        item_id = _raw_id(value)
        if item_id is None:
            continue
        if item_id in first:
            v.add(f"items[{i}].itemId", f"{item_id} is already defined at items[{first[item_id]}]")
        else:
            first[item_id] = i


def _check_components(v: _Validator, raw_items: list) -> None:
    """Each component names an item of type ticket, in the file or else in the database."""
    in_file: dict[str, str | None] = {}
    for value in raw_items:
        item_id = _raw_id(value)
        if item_id is not None and item_id not in in_file:
            in_file[item_id] = _raw_type(value)
    refs: list[tuple[str, str]] = []  # (path, itemId)
    for i, value in enumerate(raw_items):
        if _raw_type(value) != ItemType.PACKAGE or not isinstance(value.get("components"), list):
            continue  # components on a non-package are reported by the item's own checks
        for j, component in enumerate(value["components"]):
            code = _raw_id(component)
            if code is not None:
                refs.append((f"items[{i}].components[{j}].itemId", code))
    missing = {code for _, code in refs if code not in in_file}
    in_db = dict(Item.objects.filter(item_id__in=missing).values_list("item_id", "item_type")) if missing else {}
    for path, code in refs:
        if code in in_file:
            item_type = in_file[code]
            if item_type is None:  # its own type is invalid and reported there
                continue
        elif code in in_db:
            item_type = in_db[code]
        else:
            v.add(path, f"{code} is neither in this file nor in the catalog")
            continue
        if item_type != ItemType.TICKET:
            v.add(path, f"{code} is a {item_type}; a package component must be a ticket")


def _check_still_components(v: _Validator, raw_items: list) -> None:
    """An item that packages outside the file use as a component must stay a ticket."""
    changing = {}
    for i, value in enumerate(raw_items):
        item_id, item_type = _raw_id(value), _raw_type(value)
        if item_id is not None and item_type is not None and item_type != ItemType.TICKET:
            changing.setdefault(item_id, i)
    if not changing:
        return
    in_file = {_raw_id(value) for value in raw_items} - {None}
    uses = (
        PackageComponent.objects.filter(component__item_id__in=changing)
        .exclude(package__item_id__in=in_file)
        .values_list("component__item_id", "package__item_id")
        .order_by("component__item_id", "package__item_id")
    )
    for component_id, package_id in uses:
        v.add(
            f"items[{changing[component_id]}].type",
            f"must stay ticket: {component_id} is a component of package {package_id}",
        )


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
        .order_by("item_id", "visit_date", "visit_time")
    )
    now = timezone.now()
    altered = []
    for row in rows:
        capacity = changes[(row.item_id, row.visit_time)]
        if capacity is not None and capacity < row.sold:
            when = row.visit_date.isoformat() + (f" {row.visit_time:%H:%M}" if row.visit_time else "")
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
