"""The outbox: any app hands an event in, inside its own transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from notifications.models import DeliveryState, Event, Subscription


def publish_event(*, event_type: str, partner_pk: int, subject_id: str, payload: dict[str, Any]) -> Event:
    """Record an event in the caller's transaction; delivery starts after commit. Call it inside
    the transaction that makes the change the event announces, so a rollback announces nothing."""
    has_subscription = Subscription.objects.filter(partner_id=partner_pk, event_type=event_type, active=True).exists()
    event = Event.objects.create(
        event_type=event_type,
        partner_id=partner_pk,
        subject_id=subject_id,
        payload=payload,
        delivery_state=DeliveryState.PENDING if has_subscription else DeliveryState.NONE,
    )
    return event
