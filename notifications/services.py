"""The outbox: any app hands an event in, inside its own transaction; and the services that
manage subscriptions and (re)schedule deliveries. Sending lives in notifications.delivery."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Value, When
from django.utils import timezone
from django_q.tasks import async_task

from channel_manager.kernel.errors import NotFound, ValidationFailed
from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.logs import request_id_kwargs
from channel_manager.kernel.models import Partner
from notifications.models import Delivery, DeliveryState, Event, Subscription, event_types
from notifications.signing import new_secret
from notifications.targets import UnsafeTarget, check_target

logger = logging.getLogger(__name__)

DELIVER_EVENT_TASK = "notifications.tasks.deliver_event_task"
TASK_GROUP = "webhooks"
DEFAULT_MAX_SUBSCRIPTIONS = 20


def event_body(
    *, event_id: uuid.UUID, event_type: str, created_at: dt.datetime, payload: dict[str, Any], livemode: bool = True
) -> str:
    """The JSON document a receiver gets: {"eventId", "eventType", "createdAt", "livemode", "data"}."""
    document = {
        "eventId": str(event_id), "eventType": event_type, "createdAt": rfc3339(created_at), "livemode": livemode,
        "data": payload,
    }
    return json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))


def body_bytes(event: Event) -> bytes:
    """The bytes every attempt of this event sends and signs."""
    if not event.body:  # an event recorded before bodies were stored
        return event_body(
            event_id=event.event_id, event_type=event.event_type, created_at=event.created_at, payload=event.payload,
            livemode=event.livemode,
        ).encode()
    return event.body.encode()


# ---- publishing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    """One event to publish: the partner it is for, what it is about, and its data."""

    partner_pk: int
    subject_id: str
    payload: dict[str, Any]
    # False for test data (API.md, "Test mode"): it goes to the partner's test subscriptions only.
    livemode: bool = True


def publish_event(
    *, event_type: str, partner_pk: int, subject_id: str, payload: dict[str, Any], livemode: bool = True
) -> Event:
    """Record an event in the caller's transaction; delivery starts after commit (see
    publish_events)."""
    (event,) = publish_events(
        event_type=event_type,
        events=[EventSpec(partner_pk=partner_pk, subject_id=subject_id, payload=payload, livemode=livemode)],
    )
    return event


def publish_events(*, event_type: str, events: Sequence[EventSpec]) -> list[Event]:
    """Record events in the caller's transaction; delivery starts after commit. Call it inside
    the transaction that makes the change the events announce, so a rollback announces nothing.

    Writes the events and one pending delivery per active subscription of each event's partner
    and mode to this event type (three statements whatever the number of events); after commit a
    django-q task per event with deliveries sends them. Should a task never be queued or its
    worker die, the periodic deliver_due sends them anyway: the rows are the outbox."""
    if not events:
        return []
    now = timezone.now()
    subscriptions: dict[tuple[int, bool], list[int]] = {}  # by (partner pk, livemode)
    for partner_pk, livemode, pk in Subscription.objects.filter(
        partner_id__in={spec.partner_pk for spec in events}, event_type=event_type, active=True
    ).order_by("pk").values_list("partner_id", "livemode", "pk"):
        subscriptions.setdefault((partner_pk, livemode), []).append(pk)
    rows = []
    for spec in events:
        event_id = uuid.uuid4()
        rows.append(Event(
            event_id=event_id,
            event_type=event_type,
            partner_id=spec.partner_pk,
            livemode=spec.livemode,
            subject_id=spec.subject_id,
            payload=spec.payload,
            body=event_body(
                event_id=event_id, event_type=event_type, created_at=now, payload=spec.payload, livemode=spec.livemode
            ),
            created_at=now,
            delivery_state=(
                DeliveryState.PENDING if subscriptions.get((spec.partner_pk, spec.livemode)) else DeliveryState.NONE
            ),
        ))
    created = Event.objects.bulk_create(rows)
    if any(event.pk is None for event in created):  # a backend that does not return keys
        created = list(Event.objects.filter(event_id__in=[event.event_id for event in rows]).order_by("pk"))
    deliveries = [
        Delivery(event=event, subscription_id=pk, state=DeliveryState.PENDING, next_attempt_at=now, created_at=now)
        for event in created
        for pk in subscriptions.get((event.partner_id, event.livemode), ())
    ]
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        for event in created:
            if subscriptions.get((event.partner_id, event.livemode)):
                enqueue_after_commit(event.pk)
    return created


def enqueue_after_commit(event_pk: int) -> None:
    """Queue the delivery task once the current transaction commits. Should queueing fail (the
    error is logged), the deliveries are still due and the periodic deliver_due sends them."""
    transaction.on_commit(lambda: enqueue_delivery(event_pk), robust=True)


def enqueue_delivery(event_pk: int) -> None:
    """Queue the task that sends an event's due deliveries (after commit), on the webhook
    cluster's own queue (settings.WEBHOOK_QUEUE): never on the issuance workers."""
    # The request id of the request (or task) that published it travels along, for the logs.
    async_task(
        DELIVER_EVENT_TASK, event_pk, group=TASK_GROUP, task_name=f"deliver-event-{event_pk}",
        cluster=settings.WEBHOOK_QUEUE, **request_id_kwargs(),
    )


# ---- subscriptions ------------------------------------------------------------------------


def create_subscription(*, partner: Partner, event_type: str, url: str, livemode: bool = True) -> Subscription:
    """A new active subscription with a fresh secret. The event type must be one the outbox
    was told of, and the URL a webhook target we may send to (see notifications.targets), else
    ValidationFailed on `eventType` or `url`; at most WEBHOOK_MAX_SUBSCRIPTIONS not deleted
    subscriptions per partner. The partner API and the admin both create through here.
    A test subscription (livemode False, made with a test key) receives test events only."""
    _check_event_type(event_type)
    check_subscription_url(url=url)
    with transaction.atomic():
        # Serialize a partner's concurrent subscribes so the limit holds.
        Partner.objects.select_for_update().filter(pk=partner.pk).values_list("pk", flat=True).first()
        _check_limit(partner_pk=partner.pk)
        return Subscription.objects.create(
            partner=partner, livemode=livemode, event_type=event_type, url=url, secret=new_secret()
        )


def check_subscription(*, partner_pk: int, event_type: str, url: str) -> None:
    """What create_subscription would refuse, raised as the same ValidationFailed, without
    creating anything: for forms that show the problem before saving."""
    _check_event_type(event_type)
    check_subscription_url(url=url)
    _check_limit(partner_pk=partner_pk)


def _check_event_type(event_type: str) -> None:
    if event_type not in event_types():
        raise ValidationFailed([{"field": "eventType", "message": f"Must be one of: {', '.join(event_types())}."}])


def check_subscription_url(*, url: str) -> None:
    """A URL we may send webhooks to (notifications.targets), else ValidationFailed on `url`."""
    try:
        check_target(url)
    except UnsafeTarget as error:
        raise ValidationFailed([{"field": "url", "message": str(error)}]) from None


def _check_limit(*, partner_pk: int) -> None:
    limit = getattr(settings, "WEBHOOK_MAX_SUBSCRIPTIONS", DEFAULT_MAX_SUBSCRIPTIONS)
    if Subscription.objects.filter(partner_id=partner_pk, deleted_at__isnull=True).count() >= limit:
        raise ValidationFailed(
            [{"field": "", "message": f"At most {limit} subscriptions per partner; delete one first."}]
        )


def partner_subscription(
    *, partner: Partner, subscription_id: str, livemode: bool | None = None
) -> Subscription | None:
    """The partner's own, not deleted subscription with this id (of this mode, when given)."""
    try:
        value = uuid.UUID(subscription_id)
    except (ValueError, TypeError, AttributeError):
        return None
    queryset = Subscription.objects.filter(partner=partner, subscription_id=value, deleted_at__isnull=True)
    if livemode is not None:
        queryset = queryset.filter(livemode=livemode)
    return queryset.first()


def delete_subscription(*, partner: Partner, subscription_id: str, livemode: bool = True) -> None:
    """The partner deletes one of its subscriptions: nothing more is sent to it (its pending
    deliveries fail), and it leaves the list; the row stays for the delivery history.
    Another partner's or an unknown id: NotFound."""
    with transaction.atomic():
        subscription = partner_subscription(partner=partner, subscription_id=subscription_id, livemode=livemode)
        if subscription is None:
            raise NotFound("No such subscription.")
        _soft_delete(subscription_pk=subscription.pk, reason="deleted by the partner")


def _soft_delete(*, subscription_pk: int, reason: str) -> None:
    """The row stays (with deleted_at) for the delivery history; nothing more is sent to it."""
    Subscription.objects.filter(pk=subscription_pk).update(deleted_at=timezone.now())
    disable_subscription(subscription_pk=subscription_pk, reason=reason)


def disable_subscription(*, subscription_pk: int, reason: str) -> int:
    """Switch a subscription off: nothing more is sent to it and its pending deliveries fail.
    Returns how many pending deliveries failed."""
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription_pk).update(active=False, disabled_reason=reason[:255])
        pending = list(
            Delivery.objects.select_for_update()
            .filter(subscription_id=subscription_pk, state=DeliveryState.PENDING)
            .order_by("pk")
            .values_list("pk", "event_id")
        )
        if pending:
            Delivery.objects.filter(pk__in=[pk for pk, _ in pending]).update(
                state=DeliveryState.FAILED, next_attempt_at=None, claim_token=None,
                last_error=f"subscription switched off: {reason}"[:1000],
            )
            refresh_event_states(event_pks=[event_pk for _, event_pk in pending])
    return len(pending)


# What the partner API shows as disabledReason: the reasons the system writes (an endpoint's 410,
# the partner's own delete) as they are; anything staff wrote (who did it, their note) only as
# this neutral sentence. The stored reason keeps who and why for the admin.
STAFF_SWITCHED_OFF = "switched off by the venue's staff"
PARTNER_VISIBLE_REASONS = ("endpoint answered ", "deleted by the partner")


def partner_disabled_reason(reason: str | None) -> str | None:
    """disabledReason for the partner: why it is off, never which member of staff did it."""
    if not reason:
        return None
    return reason if reason.startswith(PARTNER_VISIBLE_REASONS) else STAFF_SWITCHED_OFF


def enable_subscription(*, subscription_pk: int) -> None:
    """Staff switch a subscription back on; events from now on reach it (redeliver older ones)."""
    Subscription.objects.filter(pk=subscription_pk, deleted_at__isnull=True).update(active=True, disabled_reason="")


# ---- staff (the admin) -------------------------------------------------------------------


def _staff_subscription(subscription_pk: int) -> Subscription:
    """A not deleted subscription, locked; NotFound otherwise."""
    subscription = Subscription.objects.select_for_update().filter(pk=subscription_pk, deleted_at__isnull=True).first()
    if subscription is None:
        raise NotFound("No such subscription (or it was deleted).")
    return subscription


def switch_off_subscription(*, subscription_pk: int, staff: str, reason: str = "") -> int:
    """Staff switch a subscription off, saying who (and why): its pending deliveries fail.
    Returns how many failed."""
    with transaction.atomic():
        _staff_subscription(subscription_pk)
        why = f"switched off by {staff}" + (f": {reason.strip()}" if reason.strip() else "")
        logger.info("subscription %s %s", subscription_pk, why)
        return disable_subscription(subscription_pk=subscription_pk, reason=why)


def change_subscription_url(*, subscription_pk: int, url: str) -> None:
    """Staff point a subscription at another URL, which must be a target we may send to (the
    same check as on creation), else ValidationFailed on `url`. The secret stays."""
    check_subscription_url(url=url)
    with transaction.atomic():
        _staff_subscription(subscription_pk)
        Subscription.objects.filter(pk=subscription_pk).update(url=url)


def delete_subscription_as_staff(*, subscription_pk: int, staff: str) -> bool:
    """Staff delete a subscription as the partner would: it is switched off and leaves the
    partner's list, and the row stays for the delivery history. False if it was deleted already."""
    with transaction.atomic():
        if not Subscription.objects.select_for_update().filter(pk=subscription_pk, deleted_at__isnull=True).exists():
            return False
        _soft_delete(subscription_pk=subscription_pk, reason=f"deleted by {staff}")
    return True


# ---- delivery bookkeeping -----------------------------------------------------------------


def refresh_event_states(*, event_pks: Iterable[int]) -> None:
    """Recompute Event.delivery_state from the deliveries: failed if any failed for good,
    else pending if any is pending, else delivered, or none when there are none. The events
    are locked first (in pk order), so that concurrent workers finishing deliveries of one
    event each see the other's result."""
    pks = sorted(set(event_pks))
    if not pks:
        return
    deliveries = Delivery.objects.filter(event=OuterRef("pk"))
    with transaction.atomic():
        list(Event.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk", flat=True))
        Event.objects.filter(pk__in=pks).update(
            delivery_state=Case(
                When(Exists(deliveries.filter(state=DeliveryState.FAILED)), then=Value(DeliveryState.FAILED)),
                When(Exists(deliveries.filter(state=DeliveryState.PENDING)), then=Value(DeliveryState.PENDING)),
                When(Exists(deliveries), then=Value(DeliveryState.DELIVERED)),
                default=Value(DeliveryState.NONE),
            )
        )


def _reset(deliveries, now: dt.datetime) -> list[int]:
    """Put deliveries back to pending with a fresh retry schedule; the event pks touched."""
    rows = list(deliveries.select_for_update(of=("self",)).order_by("pk").values_list("pk", "event_id"))
    if rows:
        Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            state=DeliveryState.PENDING, attempt_count=0, next_attempt_at=now, claim_token=None, last_error="",
        )
    return sorted({event_pk for _, event_pk in rows})


def redeliver_events(*, event_pks: Iterable[int]) -> int:
    """Staff redelivery: send the events again, now, to every active subscription of their
    partner and type (also ones created after the event, and deliveries already delivered or
    failed). Returns how many deliveries were scheduled."""
    now = timezone.now()
    with transaction.atomic():
        events = list(Event.objects.filter(pk__in=list(event_pks)).order_by("pk"))
        for event in events:
            subscription_pks = Subscription.objects.filter(
                partner_id=event.partner_id, livemode=event.livemode, event_type=event.event_type, active=True
            ).values_list("pk", flat=True)
            Delivery.objects.bulk_create(
                [Delivery(event=event, subscription_id=pk, next_attempt_at=now, created_at=now)
                 for pk in subscription_pks],
                ignore_conflicts=True,
            )
        scheduled = Delivery.objects.filter(event__in=events, subscription__active=True)
        count = scheduled.count()
        touched = _reset(scheduled, now)
        refresh_event_states(event_pks=[e.pk for e in events])
        for event_pk in touched:
            enqueue_after_commit(event_pk)
    return count


def redeliver_deliveries(*, delivery_pks: Iterable[int]) -> int:
    """Staff redelivery of single deliveries (those whose subscription is active); how many."""
    now = timezone.now()
    with transaction.atomic():
        scheduled = Delivery.objects.filter(pk__in=list(delivery_pks), subscription__active=True)
        count = scheduled.count()
        touched = _reset(scheduled, now)
        refresh_event_states(event_pks=touched)
        for event_pk in touched:
            enqueue_after_commit(event_pk)
    return count
