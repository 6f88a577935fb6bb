"""Reads for the notifications API."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet
from django.utils import timezone

from channel_manager.kernel.cursors import cursor_instant, cursor_row_id, decode_cursor, encode_cursor
from channel_manager.kernel.models import Partner
from notifications.models import Event, Subscription

EVENT_WINDOW = dt.timedelta(days=30)


def partner_subscriptions(*, partner: Partner, livemode: bool = True) -> QuerySet[Subscription]:
    """The partner's subscriptions of one mode (not deleted), newest first."""
    return Subscription.objects.filter(partner=partner, livemode=livemode, deleted_at__isnull=True).order_by(
        "-created_at", "-id"
    )


EVENT_CURSOR = "e"


def encode_event_cursor(event: Event) -> str:
    return encode_cursor(EVENT_CURSOR, event.created_at.astimezone(dt.UTC).isoformat(), event.pk)


def decode_event_cursor(cursor: str) -> tuple[dt.datetime, int]:
    created, pk = decode_cursor(cursor, EVENT_CURSOR, 2)
    return cursor_instant(created), cursor_row_id(pk)


def partner_events(
    *, partner: Partner, livemode: bool = True, since: dt.datetime | None = None,
    after: tuple[dt.datetime, int] | None = None,
) -> QuerySet[Event]:
    """The partner's own events of one mode of the last 30 days (created at or after `since`),
    oldest first, after a keyset position (created_at, id)."""
    start = timezone.now() - EVENT_WINDOW
    if since is not None and since > start:
        start = since
    queryset = Event.objects.filter(partner=partner, livemode=livemode, created_at__gte=start)
    if after is not None:
        created_at, pk = after
        queryset = queryset.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=pk))
    return queryset.order_by("created_at", "id").only(
        "id", "event_id", "event_type", "created_at", "livemode", "subject_id", "delivery_state"
    )
