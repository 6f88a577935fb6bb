"""Queueing issuance: the one place an order is put on the django-q2 queue."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from channel_manager.kernel.logs import request_id_kwargs
from channel_manager.orders.models import Order, OrderStatus, OrderStatusChange

ISSUANCE_TASK = "channel_manager.orders.tasks.issue_order_task"


def enqueue_issuance(order_pk: int) -> None:
    """Queue issuance and mark the order Scheduled, in the caller's transaction: the queue is a
    table of the same database (django-q2's ORM broker), so the task exists if and only if the
    order it issues was committed. Nothing is left to do after commit that could fail."""
    with transaction.atomic(savepoint=False):  # joins the caller's transaction as it is
        queue_issuance_task(order_pk)
        moved = Order.objects.filter(pk=order_pk, status=OrderStatus.SUBMITTED).update(
            status=OrderStatus.SCHEDULED, updated_at=timezone.now()
        )
        if moved:
            OrderStatusChange.objects.create(
                order_id=order_pk, from_status=OrderStatus.SUBMITTED,
                to_status=OrderStatus.SCHEDULED, actor="system", message="queued for issuance",
            )


def queue_issuance_task(order_pk: int) -> None:
    # The request id of the request (or task) that queues it travels along, for the logs.
    async_task(ISSUANCE_TASK, order_pk, group="issuance", task_name=f"issue-order-{order_pk}", **request_id_kwargs())


