"""django-q2 tasks. A task takes ids, fetches, and calls a service; it may run twice."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from channel_manager.issuance import issue_order
from channel_manager.models import IN_FLIGHT, Order, OrderStatus, OrderStatusChange

logger = logging.getLogger(__name__)

ISSUANCE_TASK = "channel_manager.tasks.issue_order_task"
SWEEP_TASK = "channel_manager.tasks.sweep_stuck_orders"
SWEEP_SCHEDULE_NAME = "sweep-stuck-orders"
SWEEP_BATCH = 500


def enqueue_issuance(order_pk: int) -> None:
    """Queue issuance and mark the order Scheduled. Runs after commit; if it fails (database
    gone), the order stays Submitted and the sweeper enqueues it later."""
    _queue(order_pk)
    with transaction.atomic():
        moved = Order.objects.filter(pk=order_pk, status=OrderStatus.SUBMITTED).update(
            status=OrderStatus.SCHEDULED, updated_at=timezone.now()
        )
        if moved:
            OrderStatusChange.objects.create(
                order_id=order_pk, from_status=OrderStatus.SUBMITTED,
                to_status=OrderStatus.SCHEDULED, actor="system", message="queued for issuance",
            )


def _queue(order_pk: int) -> None:
    async_task(ISSUANCE_TASK, order_pk, group="issuance", task_name=f"issue-order-{order_pk}")


def issue_order_task(order_pk: int) -> str | None:
    """Issue one order (see channel_manager.issuance); harmless when it runs twice."""
    return issue_order(order_pk=order_pk)


def sweep_stuck_orders(*, limit: int = SWEEP_BATCH) -> int:
    """Re-enqueue orders in flight that nobody has touched for ISSUANCE_STUCK_SECONDS: their
    task was lost (enqueueing failed after commit) or their worker died. Runs every minute as
    the django-q schedule "sweep-stuck-orders". Returns how many orders it re-enqueued.

    Submitted orders go through enqueue_issuance. Processing and Scheduled orders are moved
    to (or kept in) Scheduled with a history row and a fresh updated_at, so that each is
    re-enqueued at most once per ISSUANCE_STUCK_SECONDS. An order whose worker is still
    issuing it holds its row lock and is skipped (SKIP LOCKED). Duplicate tasks are harmless:
    issuance checks the status under the row lock and does nothing for a settled order.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=settings.ISSUANCE_STUCK_SECONDS)
    with transaction.atomic():
        stuck = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(status__in=IN_FLIGHT, updated_at__lt=cutoff)
            .order_by("updated_at", "pk")
            .values_list("pk", "status")[:limit]
        )
        submitted = [pk for pk, status in stuck if status == OrderStatus.SUBMITTED]
        requeued = [(pk, status) for pk, status in stuck if status != OrderStatus.SUBMITTED]
        if requeued:
            now = timezone.now()
            Order.objects.filter(pk__in=[pk for pk, _ in requeued]).update(
                status=OrderStatus.SCHEDULED, updated_at=now
            )
            OrderStatusChange.objects.bulk_create(
                OrderStatusChange(
                    order_id=pk, from_status=status, to_status=OrderStatus.SCHEDULED, at=now,
                    actor="sweeper", message="re-enqueued by sweeper",
                )
                for pk, status in requeued
            )
        transaction.on_commit(
            lambda: _enqueue_after_sweep([pk for pk, _ in requeued], submitted)
        )
    if stuck:
        logger.warning("sweeper re-enqueued %d stuck orders", len(stuck))
    return len(stuck)


def _enqueue_after_sweep(requeued: list[int], submitted: list[int]) -> None:
    # One failure must not keep the others waiting; a failed one is swept again later.
    for pk in requeued:
        try:
            _queue(pk)
        except Exception:
            logger.exception("sweeper could not enqueue order %s", pk)
    for pk in submitted:
        try:
            enqueue_issuance(pk)
        except Exception:
            logger.exception("sweeper could not enqueue order %s", pk)
