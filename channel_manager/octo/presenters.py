"""OCTO's shapes, as plain dicts (octo-types' openapi.yaml: Supplier, Product, Option, Unit,
Availability, AvailabilityCalendar, Booking, UnitItem, Ticket)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from catalog.models import Item, ItemType
from catalog.selectors import get_venue
from channel_manager.kernel.formats import rfc3339
from channel_manager.octo import mapping
from channel_manager.octo.mapping import OPEN_STATUSES, Slot
from channel_manager.octo.selectors import BookingRecord
from channel_manager.orders.models import OrderStatus
from channel_manager.orders.services import hold_has_passed
from wallets.passkit import passkit_enabled

ON_HOLD = "ON_HOLD"
CONFIRMED = "CONFIRMED"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"
REDEEMED = "REDEEMED"
PENDING = "PENDING"
REJECTED = "REJECTED"

DIGITAL = "DIGITAL"
QRCODE = "QRCODE"
PKPASS_URL = "PKPASS_URL"


PRICING = "octo/pricing"
# ISO 4217 currencies without minor units; every other one is written in hundredths.
ZERO_DECIMAL_CURRENCIES = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                                     "VND", "VUV", "XAF", "XOF", "XPF"})


def precision(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


def pricing_dict(amount: Decimal, currency: str) -> dict[str, Any]:
    """OCTO's Pricing: integers in the currency's minor unit. `net` (what the reseller pays)
    is not a figure the catalog keeps: null. Taxes are included in the price and not itemised."""
    minor = int((amount * (10 ** precision(currency))).to_integral_value(ROUND_HALF_UP))
    return {"original": minor, "retail": minor, "net": None, "currency": currency,
            "currencyPrecision": precision(currency), "includedTaxes": []}


def unit_price(item: Item) -> Decimal:
    """The price of one unit: a wallet's (ticket, package) or a group's (group ticket)."""
    return item.price


def supplier_dict() -> dict[str, Any]:
    venue = get_venue()
    base = settings.PUBLIC_BASE_URL
    return {
        "id": "venue",
        "name": venue.name,
        "endpoint": f"{base}/octo",
        "contact": {"website": base, "email": None, "telephone": None, "address": None},
    }


def delivery_formats() -> list[str]:
    return [QRCODE, PKPASS_URL] if passkit_enabled() else [QRCODE]


def unit_dict(item: Item, *, pricing: bool = False) -> dict[str, Any]:
    unit = mapping.unit_of(item)
    group = unit.id == mapping.GROUP_UNIT_ID
    out = {
        "id": unit.id,
        "internalName": f"Group of up to {unit.pax}" if group else item.name,
        "reference": None,
        "type": "OTHER",
        "restrictions": {
            "minAge": 0, "maxAge": 100, "idRequired": False, "minQuantity": None, "maxQuantity": None,
            "paxCount": unit.pax, "accompaniedBy": [],
        },
        "requiredContactFields": [],
    }
    if pricing:
        out["pricingFrom"] = [pricing_dict(unit_price(item), get_venue().currency)]
    return out


def option_dict(item: Item, *, pricing: bool = False) -> dict[str, Any]:
    return {
        "id": mapping.OPTION_ID,
        "default": True,
        "internalName": item.name,
        "reference": None,
        "availabilityLocalStartTimes": mapping.start_time_words(item),
        # Cancelling is allowed until the tickets are used (the gate, not the clock, decides).
        "cancellationCutoff": "0 hours",
        "cancellationCutoffAmount": 0,
        "cancellationCutoffUnit": "hour",
        "requiredContactFields": [],
        "restrictions": {"minUnits": 1, "maxUnits": settings.MAX_WALLETS_PER_ORDER},
        "units": [unit_dict(item, pricing=pricing)],
    }


def product_dict(item: Item, *, pricing: bool = False) -> dict[str, Any]:
    venue = get_venue()
    out = {
        "id": item.item_id,
        "internalName": item.name,
        "reference": None,
        "locale": "en",
        "timeZone": venue.time_zone,
        "allowFreesale": mapping.freesale(item),
        "instantConfirmation": True,
        "instantDelivery": True,
        "availabilityRequired": True,
        "availabilityType": mapping.availability_type(item),
        "deliveryFormats": delivery_formats(),
        "deliveryMethods": ["VOUCHER", "TICKET"],
        "redemptionMethod": DIGITAL,
        "options": [option_dict(item, pricing=pricing)],
    }
    if pricing:
        out.update(defaultCurrency=venue.currency, availableCurrencies=[venue.currency], pricingPer="UNIT")
    return out


def _max_units(item: Item, slot: Slot) -> int | None:
    if slot.remaining is None:
        return None
    return slot.remaining // mapping.unit_of(item).pax


def availability_dict(item: Item, slot: Slot, *, available: bool | None = None,
                      pricing: bool = False) -> dict[str, Any]:
    start = mapping.local_start(slot.visit_date, slot.visit_time)
    all_day = slot.visit_time is None
    # The catalog knows when a slot starts, not how long it lasts: a timed slot ends as it starts.
    end = start + dt.timedelta(days=1) if all_day else start
    return {
        "id": start.isoformat(),
        "localDateTimeStart": start.isoformat(),
        "localDateTimeEnd": end.isoformat(),
        "utcCutoffAt": rfc3339(mapping.cutoff(slot.visit_date)),
        "allDay": all_day,
        "available": slot.status in OPEN_STATUSES if available is None else available,
        "status": str(slot.status),
        "vacancies": slot.remaining,
        "capacity": slot.capacity,
        "maxUnits": _max_units(item, slot),
        "openingHours": [],
        **(_unit_pricing(item, "unitPricing") if pricing else {}),
    }


def _unit_pricing(item: Item, field: str) -> dict[str, Any]:
    return {field: [{"unitId": mapping.unit_of(item).id, **pricing_dict(unit_price(item), get_venue().currency)}]}


def calendar_dict(item: Item, day: Slot, *, available: bool | None = None, pricing: bool = False) -> dict[str, Any]:
    return {
        "localDate": day.visit_date.isoformat(),
        "available": day.status in OPEN_STATUSES if available is None else available,
        "status": str(day.status),
        "vacancies": day.remaining,
        "capacity": day.capacity,
        "openingHours": [],
        **(_unit_pricing(item, "unitPricingFrom") if pricing else {}),
    }


# --------------------------------------------------------------------------------------------
# Bookings
# --------------------------------------------------------------------------------------------


def booking_status(record: BookingRecord, *, now: dt.datetime | None = None) -> str:
    order = record.order
    if order is None:
        return CANCELLED  # deleted: read through its tombstone
    if order.in_flight:
        return PENDING
    if order.status == OrderStatus.DRAFT:
        return EXPIRED if hold_has_passed(order, now=now or timezone.now()) else ON_HOLD
    if order.status == OrderStatus.ISSUED:
        return REDEEMED if _redeemed_at(_assets(order)) else CONFIRMED
    if order.status == OrderStatus.ERROR:
        return EXPIRED if (order.status_message or "").startswith("hold expired") else REJECTED
    return CANCELLED


def _assets(order) -> list:
    return [asset for link in order.live_wallet_links if link.wallet.minted_at for asset in link.wallet.assets.all()]


def _redeemed_at(assets) -> str | None:
    stamps = [asset.redeemed_at for asset in assets if asset.redeemed_at]
    return rfc3339(min(stamps)) if stamps else None


def contact_dict(customer: dict[str, Any] | None) -> dict[str, Any]:
    customer = customer or {}
    first, last = customer.get("firstName"), customer.get("lastName")
    full = " ".join(part for part in (first, last) if part) or None
    language = customer.get("language")
    return {
        "fullName": full,
        "firstName": first,
        "lastName": last,
        "emailAddress": customer.get("email") or None,
        "phoneNumber": customer.get("phone"),
        "locales": [language] if language else [],
        "postalCode": None,
        "country": customer.get("country"),
        "notes": None,
    }


def _ticket(assets, wallet, qr_payload: Callable[[Any], str]) -> dict[str, Any]:
    options = [{"deliveryFormat": QRCODE, "deliveryValue": qr_payload(asset)} for asset in assets]
    if passkit_enabled() and wallet is not None and wallet.manifest_token:
        url = settings.PUBLIC_BASE_URL + reverse("wallet-pkpass", kwargs={"token": wallet.manifest_token})
        options.append({"deliveryFormat": PKPASS_URL, "deliveryValue": url})
    return {"redemptionMethod": DIGITAL, "utcRedeemedAt": _redeemed_at(assets), "deliveryOptions": options}


def booking_dict(
    record: BookingRecord, *, test_mode: bool, qr_payload: Callable[[Any], str], pricing: bool = False
) -> dict[str, Any]:
    """The booking as OCTO shows it. `qr_payload(asset)` is what a ticket's QRCODE carries;
    with `pricing` (octo/pricing), each unit item's price and the booking's total."""
    booking, order, tombstone = record.booking, record.order, record.tombstone
    status = booking_status(record)
    with_tickets = status in (CONFIRMED, REDEEMED)
    wallets = [link.wallet for link in order.live_wallet_links] if order is not None else []
    unit_items = []
    all_assets = []
    for index, unit_item in enumerate(booking.unit_items):
        wallet = wallets[index] if index < len(wallets) else None
        assets = list(wallet.assets.all()) if wallet is not None and wallet.minted_at else []
        all_assets.extend(assets)
        redeemed = _redeemed_at(assets)
        unit_items.append({
            "uuid": unit_item["uuid"],
            "resellerReference": unit_item.get("resellerReference"),
            "supplierReference": wallet.wallet_reference_number if wallet is not None else None,
            "unitId": unit_item["unitId"],
            "status": REDEEMED if redeemed and with_tickets else (CONFIRMED if status == REDEEMED else status),
            "utcRedeemedAt": redeemed,
            "contact": contact_dict(None),
            "ticket": _ticket(assets, wallet, qr_payload) if with_tickets and wallet is not None else None,
        })
    if order is not None:
        customer = order.customer
        created, updated, confirmed = order.created_at, order.updated_at, order.issued_at
        supplier_reference = order.buy_from_order_reference
        expires = rfc3339(order.hold_expires_at) if status == ON_HOLD else None
        cancelled_at = order.cancelled_at
    else:
        customer = (tombstone.order_json or {}).get("customer")
        created, updated, confirmed = tombstone.created_at, tombstone.deleted_at, None
        supplier_reference = tombstone.buy_from_order_reference
        expires = None
        cancelled_at = tombstone.deleted_at
    voucher = None
    if with_tickets:
        voucher = {
            "redemptionMethod": DIGITAL,
            "utcRedeemedAt": _redeemed_at(all_assets),
            "deliveryOptions": [
                option for item in unit_items if item["ticket"] for option in item["ticket"]["deliveryOptions"]
            ],
        }
    item = record.item
    out = {
        "id": str(booking.uuid),
        "uuid": str(booking.uuid),
        "testMode": test_mode,
        "resellerReference": booking.reseller_reference,
        "supplierReference": supplier_reference,
        "status": status,
        "utcCreatedAt": rfc3339(created),
        "utcUpdatedAt": rfc3339(updated),
        "utcExpiresAt": expires,
        "utcRedeemedAt": _redeemed_at(all_assets),
        "utcConfirmedAt": rfc3339(confirmed),
        "productId": booking.product_id,
        "optionId": mapping.OPTION_ID,
        "cancellable": status in (ON_HOLD, CONFIRMED),
        "cancellation": None if status != CANCELLED else {
            "refund": "FULL",
            "reason": booking.cancellation_reason,
            "utcCancelledAt": rfc3339(cancelled_at),
        },
        "freesale": mapping.freesale(item) if item is not None else False,
        "availabilityId": booking.availability_id,
        "availability": None,
        "contact": contact_dict(customer),
        "notes": booking.notes,
        "deliveryMethods": ["VOUCHER", "TICKET"],
        "voucher": voucher,
        "unitItems": unit_items,
    }
    if pricing:
        _add_booking_pricing(out, record)
    return out


def _add_booking_pricing(out: dict[str, Any], record: BookingRecord) -> None:
    """The prices the order was issued at (a line's unitPrice per unit item, the order's total);
    the catalog's price until the order is priced (in flight, cancelled)."""
    order, item = record.order, record.item
    currency = order.currency if order is not None else record.tombstone.currency
    unit = item.price if item is not None else Decimal("0")
    prices: list[Decimal] = []
    if order is not None:
        for line in order.live_lines:
            count = 1 if line.item_type == ItemType.GROUP_TICKET else line.quantity
            prices.extend([line.unit_price if line.unit_price is not None else unit] * count)
    prices = (prices + [unit] * len(out["unitItems"]))[: len(out["unitItems"])]
    for unit_item, price in zip(out["unitItems"], prices, strict=True):
        unit_item["pricing"] = pricing_dict(price, currency)
    total = order.total_amount if order is not None else record.tombstone.total_amount
    out["pricing"] = pricing_dict(total if total is not None else sum(prices, Decimal("0")), currency)

