"""Parsing and validating a catalog file: the whole file is checked first and every problem is
reported with its JSON path (`items[3].timeSlots[0].time: must be HH:MM`)."""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from catalog.models import (
    Item,
    ItemType,
    PackageComponent,
)
from catalog.specs import CatalogInvalid, CatalogSpec, CouponSpec, ItemSpec, SlotSpec, VenueSpec
from channel_manager.kernel import parsers

MAX_INT = 2_147_483_647  # the largest value of the integer columns
MAX_ADMIT_MINUTES = 24 * 60  # a timed ticket's admission window reaches at most a day either side
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
    "admitBeforeMinutes",
    "admitAfterMinutes",
    "components",
    "coupons",
}
_SLOT_FIELDS = {"time", "capacity"}
_COMPONENT_FIELDS = {"itemId"}
_COUPON_FIELDS = {"code", "description", "validDays"}


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

    def minutes(self, obj: dict, key: str, path: str) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if not _is_int(value) or not 0 <= value <= MAX_ADMIT_MINUTES:
            self.add(_path(path, key), f"must be a whole number of minutes from 0 to {MAX_ADMIT_MINUTES}")
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
        admit_before = self.minutes(obj, "admitBeforeMinutes", path)
        admit_after = self.minutes(obj, "admitAfterMinutes", path)
        components = self.components(obj, path)
        coupons = self.coupons(obj, path)

        if item_type is not None:
            if obj.get("maxGroupSize") is not None and item_type != ItemType.GROUP_TICKET:
                self.add(_path(path, "maxGroupSize"), "only for items of type group_ticket")
            if item_type == ItemType.PACKAGE:
                for key in ("admitBeforeMinutes", "admitAfterMinutes"):
                    if obj.get(key) is not None:
                        self.add(_path(path, key), "not for packages (each component item's window applies)")
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
            admit_before_minutes=60 if admit_before is None else admit_before,
            admit_after_minutes=60 if admit_after is None else admit_after,
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
        data = parsers.loads(  # bounded nesting: a deep file is refused, not a RecursionError
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


