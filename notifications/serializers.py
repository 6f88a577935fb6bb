"""Request parsing and the documented shapes of the notifications API (camelCase)."""

from __future__ import annotations

from rest_framework import serializers

from channel_manager.kernel.api import RFC3339Field, StrictCharField
from notifications.models import DeliveryState, EventType
from notifications.targets import MAX_URL_LENGTH


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

