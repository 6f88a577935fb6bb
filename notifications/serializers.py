"""Request parsing and the documented shapes of the notifications API (camelCase)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework import serializers

from notifications.models import DeliveryState, EventType
from notifications.targets import MAX_URL_LENGTH


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("Must not contain NUL characters.")
        return super().to_internal_value(data)


class RFC3339Field(serializers.Field):
    """An RFC 3339 timestamp with its offset (`Z` or `±HH:MM`)."""

    default_error_messages = {"invalid": "Must be an RFC 3339 timestamp with an offset, e.g. 2026-11-27T10:00:00Z."}

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
        return value.astimezone(dt.UTC)

    def to_representation(self, value: dt.datetime) -> str:
        return value.isoformat()


class SubscriptionCreateSerializer(serializers.Serializer):
    eventType = serializers.ChoiceField(choices=EventType.choices)
    url = StrictCharField(max_length=MAX_URL_LENGTH, trim_whitespace=False, help_text=(
        "Where events are POSTed. https only (http and private addresses only where the deployment "
        "allows private targets); must not resolve to a private, loopback, link-local, multicast or "
        "reserved address."
    ))


class ListEventsQuerySerializer(serializers.Serializer):
    since = RFC3339Field(required=False)
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False)


# ---- Response shapes (documentation; the views render plain dicts) --------------------------


class SubscriptionSerializer(serializers.Serializer):
    subscriptionId = serializers.UUIDField()
    eventType = serializers.ChoiceField(choices=EventType.choices)
    url = serializers.URLField()
    active = serializers.BooleanField(help_text="False once switched off (deleted endpoint answered 410, or staff).")
    disabledReason = serializers.CharField(allow_null=True, help_text="Why it was switched off.")
    createdAt = serializers.DateTimeField()


class CreatedSubscriptionSerializer(SubscriptionSerializer):
    secret = serializers.CharField(help_text=(
        "The signing secret, shown only in this response: CM-Signature is "
        "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.\" + raw body)>."
    ))


class SubscriptionListSerializer(serializers.Serializer):
    results = SubscriptionSerializer(many=True)


class EventSummarySerializer(serializers.Serializer):
    eventId = serializers.UUIDField()
    eventType = serializers.CharField()
    createdAt = serializers.DateTimeField()
    orderId = serializers.CharField(allow_null=True, help_text="The order the event is about.")
    deliveryState = serializers.ChoiceField(
        choices=DeliveryState.choices,
        help_text="none: no subscription was active; pending; delivered (to every subscription); "
        "failed (a delivery failed for good).",
    )


class EventPageSerializer(serializers.Serializer):
    results = EventSummarySerializer(many=True)
    next = serializers.URLField(allow_null=True)

