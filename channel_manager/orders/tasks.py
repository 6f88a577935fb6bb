"""django-q2 tasks. A task takes ids, fetches, and calls a service; it may run twice."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone
from django_q.models import OrmQ

from channel_manager.kernel.logs import task_context
from channel_manager.orders import state
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import IN_FLIGHT, Order, OrderStatus
from channel_manager.orders.scheduling import enqueue_issuance, queue_issuance_task

logger = logging.getLogger(__name__)

SWEEP_TASK = "channel_manager.orders.tasks.sweep_stuck_orders"
SWEEP_SCHEDULE_NAME = "sweep-stuck-orders"
SWEEP_BATCH = 500


def issue_order_task(order_pk: int, request_id: str | None = None) -> str | None:
    """Issue one order (see channel_manager.orders.issuance); harmless when it runs twice."""
    with task_context(request_id=request_id, operation="task:issue_order"):
        return issue_order(order_pk=order_pk)


def sweep_stuck_orders(*, limit: int = SWEEP_BATCH) -> int:
    """Re-enqueue orders in flight that nobody has touched for ISSUANCE_STUCK_SECONDS: their
    task was lost (taken off the queue after its attempts) or their worker died. Runs every
    minute as the django-q schedule "sweep-stuck-orders". Returns how many orders it re-enqueued.

    Submitted orders go through enqueue_issuance. Processing and Scheduled orders are moved
    to (or kept in) Scheduled with a history row and a fresh updated_at (one UPDATE and one
    INSERT for the batch, channel_manager.orders.state.transition), so that each is
    re-enqueued at most once per ISSUANCE_STUCK_SECONDS. An order whose worker is still
    issuing it holds its row lock and is skipped (SKIP LOCKED). Duplicate tasks are harmless:
    issuance checks the status under the row lock and does nothing for a settled order.

    A Scheduled order queued after the oldest task still waiting in the queue is merely behind
    a backlog, not lost: it is left alone, so a long backlog does not fill up with duplicates.
    """
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.ISSUANCE_STUCK_SECONDS)
    # Waiting tasks carry their enqueue time in `lock`; a task a worker holds is leased ahead.
    oldest_waiting = OrmQ.objects.filter(lock__lte=now).aggregate(oldest=Min("lock"))["oldest"]
    stuck_filter = Q(status__in=IN_FLIGHT, updated_at__lt=cutoff)
    if oldest_waiting is not None:
        stuck_filter &= ~Q(status=OrderStatus.SCHEDULED, updated_at__gte=oldest_waiting)
    with transaction.atomic():
        # Only what the moves need: the key and the status.
        stuck = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(stuck_filter)
            .order_by("updated_at", "pk")
            .only("pk", "status")[:limit]
        )
        submitted = [order for order in stuck if order.status == OrderStatus.SUBMITTED]
        requeued = [order for order in stuck if order.status != OrderStatus.SUBMITTED]
        state.transition(requeued, OrderStatus.SCHEDULED, actor="sweeper", message="re-enqueued by sweeper")
        # Queued in the same transaction as the moves (the queue is a table of this database).
        for order in requeued:
            queue_issuance_task(order.pk)
        enqueue_issuance(submitted)
    if stuck:
        logger.warning("sweeper re-enqueued %d stuck orders", len(stuck))
    return len(stuck)

