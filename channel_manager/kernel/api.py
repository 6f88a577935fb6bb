"""What every partner API view shares: body parsing into problem+json validation errors, strict
fields, and the documented problem responses and
Idempotency-Key header (orders, catalog, notifications)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from channel_manager.kernel.dates import INSTANT_RANGE_MESSAGE, in_calendar
from channel_manager.kernel.problems import PROBLEM_CONTENT_TYPE, flatten_errors, validation_problem


class ProblemFieldSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()
    errors = ProblemFieldSerializer(many=True, required=False)


def problem_responses(
    *codes: int, serializer: type[serializers.Serializer] = ProblemSerializer
) -> dict[tuple[int, str], OpenApiResponse]:
    """Documented problem+json answers for the given status codes (an app may document its own
    problem members with a ProblemSerializer subclass)."""
    return {
        (code, PROBLEM_CONTENT_TYPE): OpenApiResponse(serializer, description="An RFC 9457 problem.")
        for code in codes
    }


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="1–255 characters. A repeat with the same key and request replays the stored response "
    "(header Idempotent-Replayed: true); the same key with another request answers 422.",
)


def parse_body(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validated data of a JSON object body, or a validation_error naming every bad field."""
    if not isinstance(data, dict):
        raise validation_problem([{"field": "", "message": "The body must be a JSON object."}])
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise validation_problem(flatten_errors(serializer.errors))
    return serializer.validated_data


# ---- fields -----------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("Must not contain NUL characters.")
        return super().to_internal_value(data)


class RFC3339Field(serializers.Field):
    """An RFC 3339 timestamp with its offset (`Z` or `±HH:MM`), within the calendar."""

    default_error_messages = {
        "invalid": "Must be an RFC 3339 timestamp with an offset, e.g. 2026-11-27T10:00:00Z.",
        "out_of_range": INSTANT_RANGE_MESSAGE,
    }

    def to_internal_value(self, data: Any) -> dt.datetime:
        if not isinstance(data, str) or not 10 < len(data) <= 40:
            self.fail("invalid")
        # A '+' sent unencoded in a query string arrives as a space.
        text = data.strip().replace(" ", "+").upper()
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail("invalid")
        if "T" not in text or value.tzinfo is None:
            self.fail("invalid")
        if not in_calendar(value):  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            self.fail("out_of_range")
        return value.astimezone(dt.UTC)

    def to_representation(self, value: dt.datetime) -> str:
        return value.isoformat()
