"""Reads for the notifications API."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone

from channel_manager.kernel.models import Partner
from notifications.models import Event, Subscription

EVENT_WINDOW = dt.timedelta(days=30)


class BadCursor(ValueError):
    pass


def partner_subscriptions(*, partner: Partner) -> QuerySet[Subscription]:
    """The partner's subscriptions (not deleted), newest first."""
    return Subscription.objects.filter(partner=partner, deleted_at__isnull=True).order_by("-created_at", "-id")


def encode_event_cursor(event: Event) -> str:
    raw = f"e|{event.created_at.astimezone(dt.UTC).isoformat()}|{event.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_event_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, created, pk = raw.split("|")
        created_at = dt.datetime.fromisoformat(created)
        if kind != "e" or not pk.isdigit() or created_at.tzinfo is None:
            raise ValueError(cursor)
        return created_at, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor(cursor) from None


def partner_events(
    *, partner: Partner, since: dt.datetime | None = None, after: tuple[dt.datetime, int] | None = None
) -> QuerySet[Event]:
    """The partner's own events of the last 30 days (created at or after `since`), oldest first,
    after a keyset position (created_at, id)."""
    start = timezone.now() - EVENT_WINDOW
    if since is not None and since > start:
        start = since
    queryset = Event.objects.filter(partner=partner, created_at__gte=start)
    if after is not None:
        created_at, pk = after
        queryset = queryset.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=pk))
    return queryset.order_by("created_at", "id").only(
        "id", "event_id", "event_type", "created_at", "subject_id", "delivery_state"
    )
