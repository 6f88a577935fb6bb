"""What every partner API view shares: body parsing into problem+json validation errors, and
the documented problem responses and Idempotency-Key header (orders, catalog, notifications)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

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
    orderId = serializers.UUIDField(required=False, help_text="duplicate_order: the existing order.")
    orderStatus = serializers.CharField(required=False, help_text="invalid_state: the order's status.")


def problem_responses(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Documented problem+json answers for the given status codes."""
    return {
        (code, PROBLEM_CONTENT_TYPE): OpenApiResponse(ProblemSerializer, description="An RFC 9457 problem.")
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
