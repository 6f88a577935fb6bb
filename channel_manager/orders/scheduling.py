"""Queueing issuance. The orders table is the queue: a Scheduled order is due, oldest first.

Submitting an order (create, replace, the sweeper) moves it to Scheduled in the caller's
transaction, so it is on the queue if and only if it was committed. After commit, `kick`
makes sure an issuance run will look at the queue: it raises the IssuanceSignal row and, only
if it was the one to raise it, queues one run (a django-q task, `tasks.issue_due_orders_task`).
A run lowers the signal before each look at the queue, so an order committed after a run's
look raises the signal again and gets a run of its own. A burst of orders thus costs a handful
of tasks instead of one per order (no pickling and signing per order, no result rows). A
signal raised more than ISSUANCE_SIGNAL_STALE_SECONDS ago is raised anew (its run was lost:
deleted from the queue, or failed before lowering it), so no order waits for long.

Should the web process die between commit and kick, the order waits for the sweeper
(tasks.sweep_stuck_orders, every minute), which kicks for orders due too long.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.tasks import async_task

from channel_manager.kernel.logs import request_id_kwargs
from channel_manager.orders import state
from channel_manager.orders.models import IssuanceSignal, Order, OrderStatus

logger = logging.getLogger(__name__)

ISSUE_DUE_TASK = "channel_manager.orders.tasks.issue_due_orders_task"

# Submitted → Scheduled, as the history shows it.
QUEUED = state.Step(OrderStatus.SCHEDULED, actor="system", message="queued for issuance")


def submit(
    order: Order, *, actor: str, message: str = "", also_save: Sequence[str] = (), at: dt.datetime | None = None
) -> None:
    """Submit an order for issuance: a new order is inserted, a Draft or Error one (locked by
    the caller) moves back; either way it is Submitted and at once Scheduled (one write of the
    order, one INSERT of both history rows), and a run is kicked after commit. The instance
    keeps Submitted: the partner is answered with the order as it was accepted."""
    with transaction.atomic(savepoint=False):  # joins the caller's transaction as it is
        if order._state.adding:
            state.create(order, actor=actor, message=message, then=[QUEUED], at=at)
        else:
            state.transition(
                order, OrderStatus.SUBMITTED, actor=actor, message=message, then=[QUEUED],
                also_save=also_save, at=at,
            )
        kick_after_commit()
        if order.issue_after is not None:  # a "slow" test order: due later, and a run then
            when = order.issue_after
            transaction.on_commit(lambda: kick_at(when), robust=True)


def enqueue_issuance(orders: Sequence[Order]) -> None:
    """Put Submitted orders (locked by the caller) on the queue: one UPDATE and one history
    INSERT for all of them, and a run kicked after commit."""
    if not orders:
        return
    with transaction.atomic(savepoint=False):
        state.transition(orders, QUEUED.to_status, actor=QUEUED.actor, message=QUEUED.message)
        kick_after_commit()


def kick_after_commit() -> None:
    # robust: the orders are committed whatever happens here; the sweeper is the safety net.
    transaction.on_commit(kick, robust=True)


def kick(*, force: bool = False) -> bool:
    """Make sure an issuance run will look at the queue soon: raise the signal and, if this call
    raised it, queue a run; both in one short transaction of their own. `force` replaces a
    signal left raised (the sweeper: a run that was lost). True when a run was queued."""
    with transaction.atomic():
        if force:
            IssuanceSignal.objects.all().delete()
        if not _raise_signal():
            return False
        async_task(ISSUE_DUE_TASK, group="issuance", task_name="issue-due-orders", **request_id_kwargs())
    return True


class _NotBeforeBroker(ORM):
    """django-q2's ORM broker hands a queued task out once its `lock` has passed; enqueued with
    the lock at a moment to come, the task waits in the queue until then, holding no worker."""

    def __init__(self, *, not_before: dt.datetime, list_key: str | None = None) -> None:
        super().__init__(list_key=list_key)
        self.not_before = not_before

    def enqueue(self, task):
        return self.get_connection().create(key=self.list_key, payload=task, lock=self.not_before).pk


def kick_at(when: dt.datetime) -> bool:
    """Queue an issuance run that starts no earlier than `when` (a "slow" test order's
    issue_after). Only on the ORM broker (ours); elsewhere the sweeper kicks for the order once
    it has waited ISSUANCE_STUCK_SECONDS. True when a run was queued."""
    broker = get_broker()
    if type(broker) is not ORM:
        return False
    async_task(
        ISSUE_DUE_TASK, group="issuance", task_name="issue-due-orders-later",
        broker=_NotBeforeBroker(not_before=when, list_key=broker.list_key), **request_id_kwargs(),
    )
    return True


def lower_signal() -> None:
    """A run is about to look at the queue: whatever is committed by now, it will see."""
    IssuanceSignal.objects.all().delete()



def _raise_signal() -> bool:
    """INSERT … ON CONFLICT (PostgreSQL and SQLite): True if this call raised the signal, or
    found it raised so long ago (ISSUANCE_SIGNAL_STALE_SECONDS) that its run must have been
    lost, and raised it anew. A fresh signal is left as it is (its row lock lasts one statement
    of this short transaction), so concurrent requests do not queue up behind it."""
    connection = connections[IssuanceSignal.objects.db]
    meta = IssuanceSignal._meta
    qn = connection.ops.quote_name
    table, pk, raised = qn(meta.db_table), qn(meta.pk.column), qn(meta.get_field("raised_at").column)
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.ISSUANCE_SIGNAL_STALE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({pk}, {raised}) VALUES (1, %s) "
            f"ON CONFLICT ({pk}) DO UPDATE SET {raised} = excluded.{raised} WHERE {table}.{raised} < %s",
            [connection.ops.adapt_datetimefield_value(now), connection.ops.adapt_datetimefield_value(stale)],
        )
        return cursor.rowcount == 1
