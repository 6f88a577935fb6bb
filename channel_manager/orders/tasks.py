"""django-q2 tasks. A task takes ids, fetches, and calls a service; it may run twice."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channel_manager.kernel.logs import task_context
from channel_manager.orders import scheduling, state
from channel_manager.orders.issuance import issue_due_orders, issue_order
from channel_manager.orders.models import Order, OrderStatus
from channel_manager.orders.scheduling import enqueue_issuance
from channel_manager.orders.services import expire_draft_holds

logger = logging.getLogger(__name__)

SWEEP_TASK = "channel_manager.orders.tasks.sweep_stuck_orders"
SWEEP_SCHEDULE_NAME = "sweep-stuck-orders"
SWEEP_BATCH = 500
HOLD_EXPIRY_TASK = "channel_manager.orders.tasks.expire_draft_holds_task"
HOLD_EXPIRY_SCHEDULE_NAME = "expire-draft-holds"
# One run expires batches until none is due or this much time has passed; the next run, a
# minute later, goes on (so a backlog never holds a worker past the task timeout).
HOLD_EXPIRY_RUN_SECONDS = 30


def issue_order_task(order_pk: int, request_id: str | None = None) -> str | None:
    """Issue one order (see channel_manager.orders.issuance); harmless when it runs twice.
    Queued by releases before the queue became the orders table; kept for their tasks."""
    with task_context(request_id=request_id, operation="task:issue_order"):
        return issue_order(order_pk=order_pk)


def issue_due_orders_task(request_id: str | None = None) -> int:
    """An issuance run (queued by scheduling.kick): lower the signal, issue a batch of due
    orders, and again, until none is due or ISSUANCE_RUN_SECONDS have passed (then it kicks
    a successor, so a long backlog never holds a worker past the task timeout). Returns how
    many orders it settled."""
    deadline = time.monotonic() + settings.ISSUANCE_RUN_SECONDS
    settled = 0
    with task_context(request_id=request_id, operation="task:issue_due_orders"):
        while True:
            scheduling.lower_signal()
            batch = issue_due_orders()
            if batch is None:
                return settled
            settled += len(batch)
            if time.monotonic() > deadline:
                scheduling.kick()
                return settled


def sweep_stuck_orders(*, limit: int = SWEEP_BATCH) -> int:
    """Put back on the queue the orders in flight that nobody has touched for
    ISSUANCE_STUCK_SECONDS, and make sure a run comes for the queue. Runs every minute as the
    django-q schedule "sweep-stuck-orders". Returns how many orders it moved.

    Processing orders whose worker died (and Submitted ones, which no current code leaves
    behind) move to Scheduled, with a history row and a fresh updated_at (one UPDATE and one
    INSERT for the batch, channel_manager.orders.state.transition), so each moves at most once
    per ISSUANCE_STUCK_SECONDS. An order whose worker is still issuing it holds its row lock
    and is skipped (SKIP LOCKED); a run that finds an order settled does nothing for it.

    Scheduled orders are on the queue already: when any has waited that long (its run was
    lost, or the web process died before kicking), the sweeper replaces the signal and kicks.
    """
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.ISSUANCE_STUCK_SECONDS)
    with transaction.atomic():
        # Only what the moves need: the key and the status.
        stuck = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(status__in=[OrderStatus.PROCESSING, OrderStatus.SUBMITTED], updated_at__lt=cutoff)
            .order_by("updated_at", "pk")
            .only("pk", "status")[:limit]
        )
        submitted = [order for order in stuck if order.status == OrderStatus.SUBMITTED]
        processing = [order for order in stuck if order.status == OrderStatus.PROCESSING]
        state.transition(processing, OrderStatus.SCHEDULED, actor="sweeper", message="re-enqueued by sweeper")
        enqueue_issuance(submitted)
    waiting = (
        Order.objects.filter(status=OrderStatus.SCHEDULED, updated_at__lt=cutoff).exclude(issue_after__gt=now).exists()
    )
    if stuck or waiting:
        scheduling.kick(force=True)
    if stuck:
        logger.warning("sweeper re-enqueued %d stuck orders", len(stuck))
    return len(stuck)


def expire_draft_holds_task(request_id: str | None = None) -> int:
    """Expire the Draft holds that have passed (channel_manager.orders.services.expire_draft_holds),
    a batch per transaction, until none is due or HOLD_EXPIRY_RUN_SECONDS have passed. Runs every
    minute as the django-q schedule "expire-draft-holds"; two runs at once share the work and
    expire each order once. Returns how many it expired."""
    deadline = time.monotonic() + HOLD_EXPIRY_RUN_SECONDS
    expired = 0
    with task_context(request_id=request_id, operation="task:expire_draft_holds"):
        while True:
            batch = expire_draft_holds()
            expired += batch
            if not batch or time.monotonic() > deadline:
                break
    if expired:
        logger.info("expired %d Draft holds", expired)
    return expired
