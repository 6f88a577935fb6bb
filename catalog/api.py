"""The partner catalog API: the items on sale and the capacity left. Parse, call, render.

Partner authentication and problem+json errors are the project's DRF defaults (the kernel's);
the reads themselves are in catalog.availability.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils.cache import get_conditional_response, patch_cache_control, set_response_etag
from django.utils.http import http_date, parse_http_date_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import availability
from catalog.availability import MAX_RANGE_DAYS, CatalogListing, Entry, ItemAvailability, Status
from catalog.models import Item, ItemType
from channel_manager.kernel.api import problem_responses
from channel_manager.kernel.authentication import request_livemode
from channel_manager.kernel.dates import DAY_RANGE_MESSAGE, in_calendar
from channel_manager.kernel.formats import hhmm
from channel_manager.kernel.problems import Problem, flatten_errors, problem_response, validation_problem

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None




# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.DATE)
class QueryDateField(serializers.Field):
    """A date written exactly YYYY-MM-DD."""

    default_error_messages = {"invalid": "Must be a date YYYY-MM-DD.", "out_of_range": DAY_RANGE_MESSAGE}

    def to_internal_value(self, data: Any) -> dt.date:
        if not isinstance(data, str) or not _DATE_RE.fullmatch(data):
            self.fail("invalid")
        try:
            value = dt.date.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        if not in_calendar(value):  # the range's ends move by a day and into the venue's zone
            self.fail("out_of_range")
        return value

    def to_representation(self, value: dt.date) -> str:
        return value.isoformat()


class AvailabilityQuerySerializer(serializers.Serializer):
    """The query of getAvailability: `from` and `to` (Python keywords, hence get_fields)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": QueryDateField(help_text="First visit date (YYYY-MM-DD, inclusive)."),
            "to": QueryDateField(
                help_text=f"Last visit date (YYYY-MM-DD, inclusive); at most {MAX_RANGE_DAYS} dates from `from`."
            ),
        }

    def validate(self, attrs: dict[str, dt.date]) -> dict[str, dt.date]:
        date_from, date_to = attrs["from"], attrs["to"]
        if date_to < date_from:
            raise serializers.ValidationError({"to": "Must not be before from."})
        if (date_to - date_from).days >= MAX_RANGE_DAYS:
            last = date_from + dt.timedelta(days=MAX_RANGE_DAYS - 1)
            raise serializers.ValidationError(
                {"to": f"The range may span at most {MAX_RANGE_DAYS} dates: to must be {last.isoformat()} or earlier."}
            )
        return attrs


# --------------------------------------------------------------------------------------------
# Output: the documented shapes, and the functions that render them
# --------------------------------------------------------------------------------------------


class CatalogComponentSerializer(serializers.Serializer):
    itemId = serializers.CharField()
    name = serializers.CharField()


class CatalogCouponSerializer(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()


class CatalogItemSerializer(serializers.Serializer):
    itemId = serializers.CharField()
    name = serializers.CharField()
    itemType = serializers.ChoiceField(choices=ItemType.choices)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="Decimal string, e.g. \"49.50\".")
    currency = serializers.CharField(help_text="ISO 4217, the venue's currency.")
    saleFrom = serializers.DateField(allow_null=True, help_text="First visit date on sale (inclusive); null: open.")
    saleUntil = serializers.DateField(allow_null=True, help_text="Last visit date on sale (inclusive); null: open.")
    timed = serializers.BooleanField(help_text="True when a visitTime (one of timeSlots) is required.")
    timeSlots = serializers.ListField(child=serializers.CharField(help_text="HH:MM"))
    maxGroupSize = serializers.IntegerField(allow_null=True, help_text="Group tickets: most people per group.")
    components = CatalogComponentSerializer(many=True, help_text="Packages: the tickets each wallet holds.")
    coupons = CatalogCouponSerializer(many=True, help_text="Packages: the coupons each wallet holds.")


class CatalogItemListSerializer(serializers.Serializer):
    results = CatalogItemSerializer(many=True)


class AvailabilityEntrySerializer(serializers.Serializer):
    visitDate = serializers.DateField()
    visitTime = serializers.CharField(allow_null=True, help_text="HH:MM for timed items, else null.")
    capacity = serializers.IntegerField(allow_null=True, help_text="null: no capacity limit.")
    remaining = serializers.IntegerField(
        allow_null=True, help_text="Places issuance would still accept; null: no limit; 0 when SOLD_OUT or CLOSED."
    )
    status = serializers.ChoiceField(choices=[(s.value, s.value) for s in Status])


class AvailabilitySerializer(serializers.Serializer):
    itemId = serializers.CharField()
    results = AvailabilityEntrySerializer(many=True)


def item_dict(item: Item, *, currency: str) -> dict[str, Any]:
    slots = [hhmm(slot.time) for slot in item.time_slots.all()]
    return {
        "itemId": item.item_id,
        "name": item.name,
        "itemType": item.item_type,
        "price": f"{item.price:.2f}",
        "currency": currency,
        "saleFrom": _day(item.sale_from),
        "saleUntil": _day(item.sale_until),
        "timed": bool(slots),
        "timeSlots": slots,
        "maxGroupSize": item.max_group_size,
        "components": [
            {"itemId": link.component.item_id, "name": link.component.name} for link in item.components.all()
        ],
        "coupons": [{"code": c.code, "description": c.description} for c in item.coupons.all()],
    }


def listing_dict(listing: CatalogListing) -> dict[str, Any]:
    return {"results": [item_dict(item, currency=listing.currency) for item in listing.items]}


def entry_dict(entry: Entry) -> dict[str, Any]:
    return {
        "visitDate": entry.visit_date.isoformat(),
        "visitTime": hhmm(entry.visit_time),
        "capacity": entry.capacity,
        "remaining": entry.remaining,
        "status": entry.status.value,
    }


def availability_dict(found: ItemAvailability) -> dict[str, Any]:
    return {"itemId": found.item.item_id, "results": [entry_dict(e) for e in found.entries]}


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------

CONDITIONAL_HEADERS = [
    OpenApiParameter(
        "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
        description="An ETag from an earlier answer: 304 Not Modified (no body) while the answer is the same.",
    ),
    OpenApiParameter(
        "If-Modified-Since", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
        description="An HTTP date (an earlier Last-Modified): 304 when nothing changed since. "
        "If-None-Match, when sent too, takes precedence (it is exact; Last-Modified has one-second resolution).",
    ),
]

NOT_MODIFIED = OpenApiResponse(description="Not Modified: the If-None-Match / If-Modified-Since answer; no body.")

CACHING = (
    " Answers carry `ETag` (a hash of the body), `Last-Modified` and "
    "`Cache-Control: private, max-age=0, must-revalidate`; revalidate with If-None-Match or If-Modified-Since."
)


class RevalidatedAPIView(APIView):
    """Successful GETs carry an ETag (the hash of the body) and honour conditional requests.

    The view sets Last-Modified (the newest change behind the answer); this class renders the
    body, sets the ETag and Cache-Control, and answers 304 to If-None-Match or If-Modified-Since
    with Django's own precondition evaluation (RFC 9110 order: If-None-Match wins).
    """

    def finalize_response(self, request: Request, response, *args: Any, **kwargs: Any):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in ("GET", "HEAD") or response.status_code != 200:
            return response
        patch_cache_control(response, private=True, max_age=0, must_revalidate=True)
        response.render()
        set_response_etag(response)
        last_modified = parse_http_date_safe(response.get("Last-Modified", ""))
        answer = get_conditional_response(request, etag=response.get("ETag"), last_modified=last_modified,
                                          response=response)
        if answer.status_code == 412:  # If-Match / If-Unmodified-Since failed
            return problem_response(412, "precondition_failed", "The If-Match / If-Unmodified-Since condition failed.")
        return answer


def with_last_modified(response: Response, when: dt.datetime | None) -> Response:
    if when is not None:
        response["Last-Modified"] = http_date(when.timestamp())
    return response


class CatalogItemsView(RevalidatedAPIView):
    @extend_schema(
        operation_id="listCatalogItems",
        summary="List the items on sale",
        parameters=CONDITIONAL_HEADERS,
        responses={200: CatalogItemListSerializer, 304: NOT_MODIFIED, **problem_responses(401, 403, 429)},
        description="The active items, ordered by itemId, with what an order line needs: type, price "
        "(per wallet; per group for a group ticket) in the venue's currency, the sale window (inclusive), "
        "the time slots of timed items, a group ticket's maxGroupSize, a package's components and coupons."
        + CACHING,
    )
    def get(self, request: Request) -> Response:
        listing = availability.catalog_listing()
        return with_last_modified(Response(listing_dict(listing)), listing.last_modified)


class AvailabilityView(RevalidatedAPIView):
    @extend_schema(
        operation_id="getAvailability",
        summary="Capacity left per visit date (and slot)",
        parameters=[
            AvailabilityQuerySerializer,
            OpenApiParameter("itemId", OpenApiTypes.STR, OpenApiParameter.PATH, description="An item's itemId."),
            *CONDITIONAL_HEADERS,
        ],
        responses={200: AvailabilitySerializer, 304: NOT_MODIFIED, **problem_responses(400, 401, 403, 404, 412, 429)},
        description=(
            f"One entry per visit date from `from` to `to` (both inclusive, at most {MAX_RANGE_DAYS} dates), in "
            "date then time order: per date for an untimed item, per date and time slot for a timed one. "
            "`capacity` is the places of the date (slot), `remaining` what issuance would still accept now, "
            "counted exactly as issuance counts (issued and Draft orders hold places; cancelled, replaced and "
            "deleted ones give them back). Availability is advisory: issuance checks again, atomically.\n\n"
            "`status`: CLOSED when not on sale (the item is inactive, the date is outside saleFrom–saleUntil, "
            "or before the venue's today), with `remaining` 0; FREESALE when there is no capacity limit "
            "(`capacity` and `remaining` null); SOLD_OUT when nothing is left; LIMITED when under half of the "
            "capacity is left; else AVAILABLE. An inactive item answers 200 with every entry CLOSED.\n\n"
            "A package has one entry per date with `visitTime` null, its components taken on the same date. "
            "Its `remaining` is the least of its components' (those without a limit do not count), and "
            "`capacity` is that component's. For a timed component the slot with the MOST remaining counts, "
            "since the partner picks the slot in `wallet.componentSchedule`; other slots may have less. "
            "FREESALE when no component has a limit; CLOSED when the package or any component is not on sale "
            "that date. A componentSchedule that moves a component to another date is not reflected: ask for "
            "that component's own availability.\n\n"
            "With a test key the figures are the test pool's (test orders only, full at the start of each date "
            "and slot, the same size as the live capacity)." + CACHING
        ),
    )
    def get(self, request: Request, itemId: str) -> Response:
        query = AvailabilityQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise validation_problem(flatten_errors(query.errors))
        found = availability.item_availability(
            item_code=itemId, date_from=query.validated_data["from"], date_to=query.validated_data["to"],
            livemode=request_livemode(request),  # a test key reads the test pool
        )
        if found is None:
            raise Problem(404, "not_found", "No item with this itemId in the catalog.")
        return with_last_modified(Response(availability_dict(found)), found.last_modified)
