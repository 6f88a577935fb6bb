"""Request parsing and the documented shapes of the notifications API (camelCase)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from channel_manager.kernel.api import RFC3339Field, StrictCharField
from notifications.models import DeliveryState, event_type_choices
from notifications.targets import MAX_URL_LENGTH


class SubscriptionCreateSerializer(serializers.Serializer):
    eventType = serializers.ChoiceField(choices=event_type_choices())
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
    eventType = serializers.ChoiceField(choices=event_type_choices())
    url = serializers.URLField()
    livemode = serializers.BooleanField(help_text=(
        "false when made with a test key: it receives test events only (true: live events only)."
    ))
    active = serializers.BooleanField(help_text="False once switched off (deleted endpoint answered 410, or staff).")
    disabledReason = serializers.CharField(
        allow_null=True,
        help_text="Why it was switched off (by the venue's staff: \"switched off by the venue's staff\").",
    )
    createdAt = serializers.DateTimeField()


class CreatedSubscriptionSerializer(SubscriptionSerializer):
    secret = serializers.CharField(help_text=(
        "The signing secret, shown only in this response: CM-Signature is "
        "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.\" + raw body)>."
    ))


class SubscriptionListSerializer(serializers.Serializer):
    results = SubscriptionSerializer(many=True)


# The outbox does not know what its events announce: the deployment tells it how the API names
# an event's subject id and what a webhook's "data" holds (settings.NOTIFICATION_SUBJECT).
SUBJECT: dict[str, str] = {
    "field": "subjectId",
    "description": "What the event is about.",
    "data": "{...}",
    **getattr(settings, "NOTIFICATION_SUBJECT", {}),
}


# Built with type() because the subject field's name comes from the settings; the fields keep
# this order in the schema.
EventSummarySerializer = type("EventSummarySerializer", (serializers.Serializer,), {
    "__module__": __name__,
    "eventId": serializers.UUIDField(),
    "eventType": serializers.CharField(),
    "createdAt": serializers.DateTimeField(),
    "livemode": serializers.BooleanField(help_text="false for test data (made with a test key)."),
    SUBJECT["field"]: serializers.CharField(allow_null=True, help_text=SUBJECT["description"]),
    "deliveryState": serializers.ChoiceField(
        choices=DeliveryState.choices,
        help_text="none: no subscription was active; pending; delivered (to every subscription); "
        "failed (a delivery failed for good).",
    ),
})


class EventPageSerializer(serializers.Serializer):
    results = EventSummarySerializer(many=True)
    next = serializers.URLField(allow_null=True)

