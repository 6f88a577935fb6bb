"""The OCTO supplier API: parse, call one service, render; every refusal in OCTO's shape.

Authentication is the partner API's (Bearer keys, kernel.authentication). The request's
Octo-Capabilities header is read and answered with the capabilities it asks for that we
support (README, "OCTO")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.availability import MAX_RANGE_DAYS
from catalog.models import Item
from catalog.selectors import items_by_code
from channel_manager.kernel.authentication import request_livemode
from channel_manager.kernel.dates import in_calendar
from channel_manager.kernel.models import Partner
from channel_manager.kernel.problems import exception_handler
from channel_manager.octo import mapping, parsing, presenters, selectors, services
from channel_manager.octo.errors import (
    BAD_REQUEST,
    INVALID_BOOKING_UUID,
    OctoError,
    octo_body_for_problem,
)
from channel_manager.octo.selectors import BookingRecord
from wallets.gate import signing
from wallets.models import Asset

CAPABILITIES_HEADER = "Octo-Capabilities"
# The optional OCTO capabilities this API implements (README, "OCTO").
SUPPORTED_CAPABILITIES: tuple[str, ...] = (presenters.PRICING,)


def _test_mode(request: Request) -> bool:
    """OCTO's testMode: the mode of the API key the request was made with (live keys: False)."""
    return not request_livemode(request)


def _qr_payload(asset: Asset) -> str:
    """What a ticket's QRCODE carries: the asset's signed payload, as on its manifest (a test
    asset's says so: its wallet, loaded with the booking, is test)."""
    return signing.signed_payload(asset)


def capabilities(request: Request) -> list[str]:
    asked = [c.strip() for c in request.headers.get(CAPABILITIES_HEADER, "").split(",") if c.strip()]
    return [c for c in asked if c in SUPPORTED_CAPABILITIES]


class OctoView(APIView):
    # Not in /api/schema/: OCTO's contract is octo-types' openapi.yaml, not ours.
    schema = None

    def get_exception_handler(self):
        return octo_exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response[CAPABILITIES_HEADER] = ", ".join(capabilities(request))
        return response

    @property
    def partner(self) -> Partner:
        return self.request.user

    @property
    def livemode(self) -> bool:
        """The key's mode: a test key reserves, reads and counts in test mode only."""
        return request_livemode(self.request)

    def body(self) -> dict[str, Any]:
        return parsing.body_object(self.request.data)

    def booking(self, booking_uuid: str) -> BookingRecord:
        record = selectors.get_booking(partner=self.partner, booking_uuid=booking_uuid, livemode=self.livemode)
        if record is None:
            raise OctoError(INVALID_BOOKING_UUID, f"No booking {booking_uuid:.64}.", uuid=booking_uuid[:64])
        return record

    @property
    def pricing(self) -> bool:
        return presenters.PRICING in capabilities(self.request)

    def render_booking(self, record: BookingRecord) -> Response:
        return Response(booking_answer(self.request, record))


def booking_answer(request: Request, record: BookingRecord) -> dict[str, Any]:
    return presenters.booking_dict(
        record, test_mode=_test_mode(request), qr_payload=_qr_payload,
        pricing=presenters.PRICING in capabilities(request),
    )


def octo_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """OctoErrors as they are; everything the kernel would answer as problem+json (keys,
    permissions, malformed JSON, rate limits) in OCTO's shape with the same status."""
    if isinstance(exc, OctoError):
        return Response(exc.body(), status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = octo_body_for_problem(response.data)
    response.content_type = "application/json"
    return response


# --------------------------------------------------------------------------------------------
# Supplier and products
# --------------------------------------------------------------------------------------------


class SupplierView(OctoView):
    def get(self, request: Request) -> Response:
        return Response(presenters.supplier_dict())


class CapabilitiesView(OctoView):
    def get(self, request: Request) -> Response:
        return Response([
            {"id": capability, "revision": 1, "required": False, "dependencies": [], "docs": None}
            for capability in SUPPORTED_CAPABILITIES
        ])


def offered_items() -> list[Item]:
    codes = Item.objects.filter(active=True).values_list("item_id", flat=True)
    items = items_by_code(codes)
    return [items[code] for code in sorted(items) if mapping.offered(items[code])]


class ProductsView(OctoView):
    def get(self, request: Request) -> Response:
        return Response([presenters.product_dict(item, pricing=self.pricing) for item in offered_items()])


class ProductView(OctoView):
    def get(self, request: Request, product_id: str) -> Response:
        return Response(presenters.product_dict(services.product(product_id), pricing=self.pricing))


# --------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------


def _local_date(data: dict[str, Any], field: str) -> dt.date | None:
    value = data.get(field)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise parsing.bad(f"{field} must be a date YYYY-MM-DD.") from None
    if not in_calendar(day):
        raise parsing.bad(f"{field} is out of range.")
    return day


def _needed_pax(item, data: dict[str, Any]) -> int:
    """People asked for by `units` ([{"id", "quantity"}]); 0 when none."""
    units = data.get("units")
    if units is None:
        return 0
    if not isinstance(units, list):
        raise parsing.bad("units must be an array.")
    unit = mapping.unit_of(item)
    total = 0
    for entry in units:
        if not isinstance(entry, dict):
            raise parsing.bad("units must hold objects {id, quantity}.")
        quantity = entry.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 <= quantity <= 10_000:
            raise parsing.bad("units[].quantity must be a whole number from 0 to 10000.")
        services.check_units(item, [entry.get("id")])
        total += quantity * unit.pax
    return total


def _range(data: dict[str, Any]) -> tuple[dt.date, dt.date]:
    start, end = _local_date(data, "localDateStart"), _local_date(data, "localDateEnd")
    single = _local_date(data, "localDate")
    if single is not None:
        start = end = single
    if start is None or end is None:
        raise parsing.bad("Send localDate, localDateStart and localDateEnd, or availabilityIds.")
    if end < start:
        raise parsing.bad("localDateEnd must not be before localDateStart.")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise parsing.bad(f"The range may span at most {MAX_RANGE_DAYS} dates.")
    return start, end


def _open_for(slot: mapping.Slot, pax: int) -> bool | None:
    """With `units` asked for, whether that many fit; None lets the status decide."""
    if not pax:
        return None
    return slot.status in mapping.OPEN_STATUSES and (slot.remaining is None or slot.remaining >= pax)


class AvailabilityView(OctoView):
    def post(self, request: Request) -> Response:
        data = self.body()
        item = services.product(data.get("productId"))
        services.check_option(data.get("optionId"))
        pax = _needed_pax(item, data)
        wanted: set[str] | None = None
        ids = data.get("availabilityIds")
        if ids is not None:
            if not isinstance(ids, list) or not ids or len(ids) > 500:
                raise parsing.bad("availabilityIds must be an array of 1 to 500 ids.")
            days = []
            wanted = set()
            for value in ids:
                visit_date, _, canonical = services.availability(item, value)
                days.append(visit_date)
                wanted.add(canonical)
            start, end = min(days), max(days)
            if (end - start).days >= MAX_RANGE_DAYS:
                raise parsing.bad(f"availabilityIds may span at most {MAX_RANGE_DAYS} dates.")
        else:
            start, end = _range(data)
        slots = mapping.product_slots(item, date_from=start, date_to=end, livemode=self.livemode)
        out = []
        for slot in slots:
            entry = presenters.availability_dict(item, slot, available=_open_for(slot, pax), pricing=self.pricing)
            if wanted is None or entry["id"] in wanted:
                out.append(entry)
        return Response(out)


class AvailabilityCalendarView(OctoView):
    def post(self, request: Request) -> Response:
        data = self.body()
        item = services.product(data.get("productId"))
        services.check_option(data.get("optionId"))
        pax = _needed_pax(item, data)
        start, end = _range(data)
        by_day: dict[dt.date, list[mapping.Slot]] = {}
        for slot in mapping.product_slots(item, date_from=start, date_to=end, livemode=self.livemode):
            by_day.setdefault(slot.visit_date, []).append(slot)
        out = []
        for slots in by_day.values():
            day = mapping.calendar_day(slots)
            available = None
            if pax:
                available = any(_open_for(slot, pax) for slot in slots)
            out.append(presenters.calendar_dict(item, day, available=available, pricing=self.pricing))
        return Response(out)


# --------------------------------------------------------------------------------------------
# Bookings
# --------------------------------------------------------------------------------------------


class BookingsView(OctoView):
    def post(self, request: Request) -> Response:
        data = self.body()
        booking_uuid = parsing.a_uuid(data, "uuid")
        unit_items = parsing.unit_items(data, required=True)
        choice = services.choose(
            product_id=data.get("productId"), option_id=data.get("optionId"),
            availability_id=data.get("availabilityId"), unit_items=unit_items,
        )
        record = services.reserve(
            partner=self.partner, booking_uuid=booking_uuid, choice=choice,
            customer=parsing.contact(data), reseller_reference=parsing.text(data, "resellerReference", max_length=128),
            notes=parsing.text(data, "notes", max_length=2000), expiration_minutes=parsing.minutes(data),
            livemode=self.livemode,
        )
        return self.render_booking(record)

    def get(self, request: Request) -> Response:
        params = request.query_params
        reseller = params.get("resellerReference")
        supplier = params.get("supplierReference")
        if reseller is None and supplier is None:
            raise parsing.bad("Filter by resellerReference or supplierReference.")
        for name, value in (("resellerReference", reseller), ("supplierReference", supplier)):
            if value is not None and (len(value) > 128 or parsing.CONTROL_CHARACTERS.search(value)):
                raise parsing.bad(f"{name} must be at most 128 characters, without control characters.")
        found = selectors.find_bookings(
            partner=self.partner, reseller_reference=reseller, supplier_reference=supplier, livemode=self.livemode
        )
        return Response([booking_answer(request, record) for record in found])


class BookingView(OctoView):
    def get(self, request: Request, booking_uuid: str) -> Response:
        return self.render_booking(self.booking(booking_uuid))

    def patch(self, request: Request, booking_uuid: str) -> Response:
        record = self.booking(booking_uuid)
        data = self.body()
        record = services.update(
            record=record, body=data, customer=parsing.contact(data),
            reseller_reference=parsing.text(data, "resellerReference", max_length=128),
            notes=parsing.text(data, "notes", max_length=2000), unit_items=parsing.unit_items(data, required=False),
            expiration_minutes=parsing.minutes(data),
        )
        return self.render_booking(record)


class BookingConfirmView(OctoView):
    def post(self, request: Request, booking_uuid: str) -> Response:
        record = self.booking(booking_uuid)
        data = self.body()
        record = services.confirm(
            record=record, customer=parsing.contact(data),
            reseller_reference=parsing.text(data, "resellerReference", max_length=128),
            unit_items=parsing.unit_items(data, required=False),
        )
        return self.render_booking(record)


class BookingExtendView(OctoView):
    def post(self, request: Request, booking_uuid: str) -> Response:
        record = self.booking(booking_uuid)
        data = self.body() if request.data else {}
        return self.render_booking(services.extend(record=record, expiration_minutes=parsing.minutes(data)))


class BookingCancelView(OctoView):
    def post(self, request: Request, booking_uuid: str) -> Response:
        record = self.booking(booking_uuid)
        data = self.body() if request.data else {}
        reason = parsing.text(data, "reason", max_length=2000)
        return self.render_booking(services.cancel(record=record, reason=reason))


class NotFoundView(OctoView):
    """Any other path under /octo/: OCTO's error, not an HTML page."""

    def get(self, request: Request, rest: str = "") -> Response:
        raise OctoError(BAD_REQUEST, f"No such endpoint: {request.path[:128]}", status=404)

    post = patch = put = delete = get

