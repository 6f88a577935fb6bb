"""A generic outbox: events handed in by any app, stored in the caller's transaction, delivered
to the partner's subscriptions after commit. It does not know what an order is."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Subscription(models.Model):
    subscription_id = models.UUIDField("subscriptionId", default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey("channel_manager.Partner", on_delete=models.CASCADE, related_name="subscriptions")
    event_type = models.CharField(max_length=64)
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=128)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    disabled_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.event_type} → {self.url}"


class DeliveryState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    NONE = "none"


class Event(models.Model):
    event_id = models.UUIDField("eventId", default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=64)
    partner = models.ForeignKey("channel_manager.Partner", on_delete=models.CASCADE, related_name="+")
    # What the event is about (an order's id, for ota_cm_order_processed).
    subject_id = models.CharField(max_length=64, blank=True, db_index=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivery_state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["partner", "created_at"], name="event_partner_created")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
