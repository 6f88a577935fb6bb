"""Reads of the catalog: the venue, "today" at the venue, items by their public code."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import Prefetch, prefetch_related_objects
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from catalog.models import Item, PackageComponent, PackageCoupon, TimeSlot, Venue

# How long one process trusts its copy of the venue row. load_catalog in another process is
# seen within this many seconds; in this process it clears the cache itself.
VENUE_CACHE_SECONDS = 5.0

FALLBACK_VENUE_NAME = "Venue"
FALLBACK_CURRENCY = "EUR"


@dataclass(frozen=True)
class VenueInfo:
    name: str
    time_zone: str
    currency: str

    @property
    def tzinfo(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(settings.VENUE_TIME_ZONE)


_venue_lock = threading.Lock()
_venue_cache: tuple[float, VenueInfo] | None = None


def clear_venue_cache() -> None:
    """Forget the cached venue, so that the next get_venue() reads the row again."""
    global _venue_cache
    with _venue_lock:
        _venue_cache = None


def get_venue() -> VenueInfo:
    """The venue (name, time zone, currency), from its row or from settings when there is none.

    Cached per process for VENUE_CACHE_SECONDS.
    """
    global _venue_cache
    now = time.monotonic()
    cached = _venue_cache
    if cached is not None and now - cached[0] < VENUE_CACHE_SECONDS:
        return cached[1]
    row = Venue.objects.order_by("pk").first()
    if row is None:
        info = VenueInfo(name=FALLBACK_VENUE_NAME, time_zone=settings.VENUE_TIME_ZONE, currency=FALLBACK_CURRENCY)
    else:
        info = VenueInfo(name=row.name, time_zone=row.time_zone, currency=row.currency)
    with _venue_lock:
        _venue_cache = (now, info)
    return info


def _forget_venue(**kwargs: object) -> None:
    clear_venue_cache()


# Saving or deleting the row in this process (admin, load_catalog, tests) shows at once.
post_save.connect(_forget_venue, sender=Venue, dispatch_uid="catalog.selectors.venue_saved")
post_delete.connect(_forget_venue, sender=Venue, dispatch_uid="catalog.selectors.venue_deleted")


def venue_today() -> dt.date:
    """Today's date in the venue's time zone."""
    return timezone.now().astimezone(get_venue().tzinfo).date()


def items_by_code(codes: Iterable[str]) -> dict[str, Item]:
    """Items by itemId (active or not; unknown codes are simply absent).

    Four queries whatever the number of codes: the items; their package components (ordered,
    each with its component item); their coupons (ordered); and the time slots (ordered by
    time) of the items and of the component items together.
    """
    wanted = {c for c in codes if isinstance(c, str)}
    if not wanted:
        return {}
    items = list(
        Item.objects.filter(item_id__in=wanted).prefetch_related(
            Prefetch(
                "components",
                queryset=PackageComponent.objects.select_related("component").order_by("position", "pk"),
            ),
            Prefetch("coupons", queryset=PackageCoupon.objects.order_by("position", "pk")),
        )
    )
    components = [pc.component for item in items for pc in item.components.all()]
    prefetch_related_objects(items + components, Prefetch("time_slots", queryset=TimeSlot.objects.order_by("time")))
    return {item.item_id: item for item in items}


# The partner API checks every submitted line against the catalog. The catalog changes rarely,
# so each process keeps a snapshot for CATALOG_CACHE_SECONDS instead of four queries a request.
# Issuance never uses it: it reads the catalog fresh, under its locks.
CATALOG_CACHE_SECONDS = 5.0
_catalog_lock = threading.Lock()
_catalog_cache: tuple[float, dict[str, Item]] | None = None


def clear_catalog_cache() -> None:
    global _catalog_cache
    with _catalog_lock:
        _catalog_cache = None


def cached_items_by_code(codes: Iterable[str]) -> dict[str, Item]:
    """Like items_by_code, from a per-process snapshot at most CATALOG_CACHE_SECONDS old."""
    global _catalog_cache
    now = time.monotonic()
    cached = _catalog_cache
    if cached is None or now - cached[0] >= CATALOG_CACHE_SECONDS:
        snapshot = items_by_code(Item.objects.values_list("item_id", flat=True))
        with _catalog_lock:
            _catalog_cache = cached = (now, snapshot)
    snapshot = cached[1]
    return {code: snapshot[code] for code in codes if isinstance(code, str) and code in snapshot}


def _forget_catalog(**kwargs: object) -> None:
    clear_catalog_cache()


for _model in (Item, TimeSlot, PackageComponent, PackageCoupon):
    post_save.connect(_forget_catalog, sender=_model, dispatch_uid=f"catalog.selectors.{_model.__name__}.saved")
    post_delete.connect(_forget_catalog, sender=_model, dispatch_uid=f"catalog.selectors.{_model.__name__}.deleted")
