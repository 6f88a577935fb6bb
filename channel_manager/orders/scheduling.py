"""Queueing issuance: the one place an order is put on the django-q2 queue.

The queue is a table of the same database (django-q2's ORM broker), so a task is queued in the
caller's transaction: it exists if and only if the order it issues was committed, and nothing is
left to do after commit that could fail. An order on the queue is Scheduled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import transaction
from django_q.tasks import async_task

from channel_manager.kernel.logs import request_id_kwargs
from channel_manager.orders import state
from channel_manager.orders.models import Order, OrderStatus

ISSUANCE_TASK = "channel_manager.orders.tasks.issue_order_task"

# Submitted → Scheduled, as the history shows it.
QUEUED = state.Step(OrderStatus.SCHEDULED, actor="system", message="queued for issuance")


def submit(
    order: Order, *, actor: str, message: str = "", also_save: Sequence[str] = (), at: dt.datetime | None = None
) -> None:
    """Submit an order for issuance: a new order is inserted, a Draft or Error one (locked by
    the caller) moves back; either way it is Submitted and at once Scheduled, with its task
    queued. One write of the order, one INSERT of both history rows, one queue row. The
    instance keeps Submitted: the partner is answered with the order as it was accepted."""
    with transaction.atomic(savepoint=False):  # joins the caller's transaction as it is
        if order._state.adding:
            state.create(order, actor=actor, message=message, then=[QUEUED], at=at)
        else:
            state.transition(
                order, OrderStatus.SUBMITTED, actor=actor, message=message, then=[QUEUED],
                also_save=also_save, at=at,
            )
        queue_issuance_task(order.pk)


def enqueue_issuance(orders: Sequence[Order]) -> None:
    """Queue issuance of Submitted orders (locked by the caller) and mark them Scheduled: one
    UPDATE and one history INSERT for all of them, and a queue row each."""
    if not orders:
        return
    with transaction.atomic(savepoint=False):
        for order in orders:
            queue_issuance_task(order.pk)
        state.transition(orders, QUEUED.to_status, actor=QUEUED.actor, message=QUEUED.message)


def queue_issuance_task(order_pk: int) -> None:
    # The request id of the request (or task) that queues it travels along, for the logs.
    async_task(ISSUANCE_TASK, order_pk, group="issuance", task_name=f"issue-order-{order_pk}", **request_id_kwargs())
