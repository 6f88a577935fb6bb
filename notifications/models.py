"""A generic outbox: events handed in by any app, stored in the caller's transaction, delivered
to the partner's subscriptions after commit. It does not know what an order is."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from channel_manager.kernel.models import Partner


def event_type_choices() -> list[tuple[str, str]]:
    """The event types partners may subscribe to, with what each announces. The outbox is told
    them (settings.NOTIFICATION_EVENT_TYPES) by the apps that publish events."""
    return list(getattr(settings, "NOTIFICATION_EVENT_TYPES", {}).items())


def event_types() -> list[str]:
    """The names of the event types partners may subscribe to."""
    return [name for name, _ in event_type_choices()]


class Subscription(models.Model):
    subscription_id = models.UUIDField("subscriptionId", default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="subscriptions")
    # Made with a test key (API.md, "Test mode"): receives test events only, and the reverse.
    livemode = models.BooleanField(default=True)
    event_type = models.CharField(max_length=64, choices=event_type_choices)
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=128)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    disabled_reason = models.CharField(max_length=255, blank=True)
    # Set when the partner deleted it through the API: the row stays for its delivery history,
    # but the partner no longer sees it and nothing is sent to it.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The circuit breaker (notifications.delivery): failed attempts in a row (no answer, 429,
    # 5xx), and, once there were WEBHOOK_BREAKER_THRESHOLD of them, until when nothing is sent;
    # after that one probe is sent at a time until one succeeds, which closes the breaker.
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    breaker_open_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["partner", "event_type", "active"], name="subscription_partner_type")]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.event_type} → {self.url}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    NONE = "none"


class RowBoundTextField(models.TextField):
    """A text column bound as one parameter per row in a multi-row INSERT. Django sends a bulk
    insert on PostgreSQL as UNNEST of one array per column, and psycopg quotes text arrays in
    Python, character class by character class: for event bodies (kilobytes of JSON, every
    quote escaped) that was a sixth of a batch issuance's CPU. A field with a placeholder of its
    own opts the INSERT out of UNNEST."""

    def get_placeholder(self, value, compiler, connection) -> str:
        return "%s"


class Event(models.Model):
    event_id = models.UUIDField("eventId", default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=64)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    livemode = models.BooleanField(default=True)
    # What the event is about, as the publisher identifies it.
    subject_id = models.CharField(max_length=64, blank=True, db_index=True)
    payload = models.JSONField()
    # The exact JSON document POSTed to receivers, serialized once when the event is published:
    # every attempt and every redelivery sends (and signs) the same bytes.
    body = RowBoundTextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # A summary of the event's deliveries: none (no active subscription), pending, delivered
    # (all delivered) or failed (one failed for good).
    delivery_state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["partner", "livemode", "created_at"], name="event_partner_mode_created")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class Delivery(models.Model):
    """One event to one subscription: the outbox row that workers claim, send and retry."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(
        max_length=16,
        choices=[(c, label) for c, label in DeliveryState.choices if c != DeliveryState.NONE],
        default=DeliveryState.PENDING,
    )
    # Attempts made in the current retry schedule (a staff redelivery starts a new schedule).
    attempt_count = models.PositiveIntegerField(default=0)
    # When a worker may next send it. While a worker holds a claim it is the claim's expiry, so
    # a worker that dies mid-send only delays the delivery until then.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="delivery_event_subscription_unique"),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"delivery {self.pk} of {self.event_id} to {self.subscription_id} ({self.state})"


class DeliveryAttempt(models.Model):
    """One HTTP request made for a delivery (or refused before it was made)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    response_excerpt = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"attempt {self.pk} of delivery {self.delivery_id}: {self.status_code or self.error[:40]}"
