"""Housekeeping: deleting what has outlived its use, a bounded batch per run.

Each function is also the task of a django-q schedule (created by migration 0004, every
15 minutes; staff may change them in the admin). A run deletes at most HOUSEKEEPING_BATCH rows
(default 10,000) through a primary-key subquery, so no run holds locks for long or swells the
transaction log; a backlog is worked off over the following runs. Each returns how many rows
(of its own table) it deleted.

  prune_idempotency_records  Idempotency-Key records older than IDEMPOTENCY_RETENTION_HOURS (48);
                             the middleware already treats them as expired
  prune_task_results         django-q2 task results: successes older than TASK_RESULT_RETENTION_DAYS
                             (7), failures older than FAILED_TASK_RETENTION_DAYS (30). django-q2's
                             own save_limit also caps the successes by count
  prune_delivery_attempts    the attempts of delivered webhook deliveries, older than
                             DELIVERY_ATTEMPT_RETENTION_DAYS (30); pending and failed ones stay
  prune_events               events older than EVENT_RETENTION_DAYS (90) that were delivered or had
                             nobody to deliver to, with their deliveries and attempts (partners
                             can list 30 days); pending and failed ones stay for staff
  prune_deleted_orders       tombstones of deleted Draft/Error orders (DeletedOrder) older than
                             TOMBSTONE_RETENTION_DAYS (400): the audit trail outlives a year of
                             finance reporting, then goes (schedule made by migration 0010)
  prune_test_data            test orders (API.md, "Test mode") older than TEST_DATA_RETENTION_DAYS
                             (30) with their wallets and events, and test tombstones as old; live
                             rows never (schedule made by migration 0013)
  prune_gate_changes         the gate's change feed (GET /gate/sync): changes older than
                             GATE_CHANGES_RETENTION_DAYS (30) whose asset can no longer be used
                             (its last valid day is over: a ticket's visit date, a coupon's
                             validUntil) or is gone; a change of a code still usable stays, so a
                             device syncing from no cursor is complete and old cursors stay
                             valid (wallets.gate.changes) (schedule made by migration 0016)
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from channel_manager.kernel.logs import task_context

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 10_000

SCHEDULES = {
    "prune-idempotency-records": "channel_manager.ops.housekeeping.prune_idempotency_records",
    "prune-task-results": "channel_manager.ops.housekeeping.prune_task_results",
    "prune-delivery-attempts": "channel_manager.ops.housekeeping.prune_delivery_attempts",
    "prune-events": "channel_manager.ops.housekeeping.prune_events",
    "prune-deleted-orders": "channel_manager.ops.housekeeping.prune_deleted_orders",
    "prune-test-data": "channel_manager.ops.housekeeping.prune_test_data",
    "prune-gate-changes": "channel_manager.ops.housekeeping.prune_gate_changes",
}


def batch_size() -> int:
    return int(getattr(settings, "HOUSEKEEPING_BATCH", DEFAULT_BATCH))


def _ago(**delta: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(**delta)


def delete_batch(model: type[Model], queryset: QuerySet, *, limit: int) -> int:
    """Delete at most `limit` rows of `queryset` in one statement-sized transaction; how many
    rows of `model` went (cascaded rows are not counted)."""
    if limit <= 0:
        return 0
    with transaction.atomic():
        pks = queryset.order_by().values("pk")[:limit]
        _, per_model = model._base_manager.filter(pk__in=pks).delete()
    return per_model.get(model._meta.label, 0)


def _done(name: str, deleted: int, limit: int) -> int:
    if deleted:
        more = " (batch full: more next run)" if deleted >= limit else ""
        logger.info("%s deleted %d rows%s", name, deleted, more, extra={"result": deleted})
    return deleted


def prune_idempotency_records(*, limit: int | None = None) -> int:
    from channel_manager.kernel.models import IdempotencyRecord

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_idempotency_records"):
        cutoff = _ago(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
        deleted = delete_batch(IdempotencyRecord, IdempotencyRecord.objects.filter(created_at__lt=cutoff), limit=limit)
        return _done("prune_idempotency_records", deleted, limit)


def prune_task_results(*, limit: int | None = None) -> int:
    from django_q.models import Task

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_task_results"):
        success_days = getattr(settings, "TASK_RESULT_RETENTION_DAYS", 7)
        failure_days = getattr(settings, "FAILED_TASK_RETENTION_DAYS", 30)
        deleted = delete_batch(Task, Task.objects.filter(success=True, stopped__lt=_ago(days=success_days)),
                               limit=limit)
        deleted += delete_batch(Task, Task.objects.filter(success=False, stopped__lt=_ago(days=failure_days)),
                                limit=limit - deleted)
        return _done("prune_task_results", deleted, limit)


def prune_delivery_attempts(*, limit: int | None = None) -> int:
    from notifications.models import DeliveryAttempt, DeliveryState

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_delivery_attempts"):
        days = getattr(settings, "DELIVERY_ATTEMPT_RETENTION_DAYS", 30)
        old = DeliveryAttempt.objects.filter(delivery__state=DeliveryState.DELIVERED, at__lt=_ago(days=days))
        deleted = delete_batch(DeliveryAttempt, old, limit=limit)
        return _done("prune_delivery_attempts", deleted, limit)


def prune_events(*, limit: int | None = None) -> int:
    from notifications.models import DeliveryState, Event

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_events"):
        days = getattr(settings, "EVENT_RETENTION_DAYS", 90)
        old = Event.objects.filter(
            delivery_state__in=(DeliveryState.DELIVERED, DeliveryState.NONE), created_at__lt=_ago(days=days)
        )
        # Events cascade to their deliveries and attempts: keep the batch a tenth of the others.
        deleted = delete_batch(Event, old, limit=max(1, limit // 10))
        return _done("prune_events", deleted, max(1, limit // 10))


def prune_deleted_orders(*, limit: int | None = None) -> int:
    from channel_manager.orders.models import DeletedOrder

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_deleted_orders"):
        days = getattr(settings, "TOMBSTONE_RETENTION_DAYS", 400)
        old = DeletedOrder.objects.filter(deleted_at__lt=_ago(days=days))
        deleted = delete_batch(DeletedOrder, old, limit=limit)
        return _done("prune_deleted_orders", deleted, limit)


def prune_test_data(*, limit: int | None = None) -> int:
    """Test orders older than TEST_DATA_RETENTION_DAYS, with their wallets and events (batches
    of channel_manager.orders.testmode.ORDER_BATCH orders, each its own transaction), then their
    tombstones; returns how many orders (and tombstones) went."""
    from channel_manager.orders.models import DeletedOrder
    from channel_manager.orders.testmode import ORDER_BATCH, delete_test_orders

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_test_data"):
        cutoff = _ago(days=getattr(settings, "TEST_DATA_RETENTION_DAYS", 30))
        # Each order cascades to lines, history, wallets, assets, events: a tenth of the batch.
        budget = max(1, limit // 10)
        deleted = 0
        while deleted < budget:
            removed = delete_test_orders(created_before=cutoff, limit=min(ORDER_BATCH, budget - deleted))
            if not removed["orders"]:
                break
            deleted += removed["orders"]
        old = DeletedOrder.objects.filter(livemode=False, deleted_at__lt=cutoff)
        deleted += delete_batch(DeletedOrder, old, limit=limit - deleted)
        return _done("prune_test_data", deleted, limit)


def prune_gate_changes(*, limit: int | None = None) -> int:
    """Gate change feed rows older than GATE_CHANGES_RETENTION_DAYS about assets that can no
    longer be used (a day's margin past their last valid day, for devices whose clock or time
    zone lags the venue's); returns how many went."""
    from catalog.selectors import venue_today
    from wallets.gate.changes import prunable_changes
    from wallets.models import GateChange

    limit = batch_size() if limit is None else limit
    with task_context(request_id=None, operation="task:prune_gate_changes"):
        days = getattr(settings, "GATE_CHANGES_RETENTION_DAYS", 30)
        old = prunable_changes(before=_ago(days=days), last_valid_day_before=venue_today() - dt.timedelta(days=1))
        deleted = delete_batch(GateChange, old, limit=limit)
        return _done("prune_gate_changes", deleted, limit)
