"""The one function that writes an order's status.

Every status an order takes passes through here: its first one (`create`) and every change
after (`transition`). Each checks the declared state machine (TRANSITIONS in
channel_manager.orders.models), writes the status and `updated_at`, and writes the history rows
(OrderStatusChange) in one INSERT. Nothing else in the code base sets `Order.status` or writes
history rows; tests/test_state_machine.py scans the sources for it.

Locking and transactions are the caller's: the orders handed in are locked by the caller (or
are just being inserted), and everything runs in the caller's transaction. A refused transition
raises InvalidState before anything is written.

Statements: one write of the orders (INSERT or UPDATE) and one INSERT of history, whatever the
number of orders, so that the sweeper stays set-based.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from channel_manager.kernel.bulk import update_rows
from channel_manager.orders.errors import InvalidState
from channel_manager.orders.models import INITIAL_STATUS, Order, OrderStatusChange, can_transition


@dataclass(frozen=True)
class Step:
    """A further move that follows at once, in the same statements (e.g. queued for issuance
    right after being submitted), with its own history row."""

    to_status: str
    actor: str
    message: str = ""


def create(order: Order, *, actor: str, message: str = "", then: Sequence[Step] = (),
           at: dt.datetime | None = None) -> None:
    """Insert a new order in the initial status (Submitted) with its history row, stamping
    updated_at (with `at`, default now).

    `then` are moves that follow at once: the row is inserted already in the last of them and
    every history row is written in the same INSERT. The instance keeps Submitted, the status
    the order was accepted in (what the partner is answered): do not save it afterwards."""
    if not order._state.adding:
        raise ValueError("create() inserts a new order; transition() moves an existing one")
    path = _checked_path(INITIAL_STATUS, then)
    now = at or timezone.now()
    with transaction.atomic(savepoint=False):  # joins the caller's transaction as it is
        order.status = path[-1]
        order.updated_at = now
        order.save(force_insert=True)
        _write_history([(order.pk, "", INITIAL_STATUS, actor, message), *_step_rows(order.pk, then)], now)
    order.status = INITIAL_STATUS


def transition(
    orders: Order | Sequence[Order],
    to_status: str,
    *,
    actor: str,
    message: str | Callable[[Order], str] = "",
    then: Sequence[Step] = (),
    also_save: Sequence[str] = (),
    at: dt.datetime | None = None,
) -> None:
    """Move the orders (locked by the caller) to `to_status`: checks every one against the
    state machine first and raises InvalidState, writing nothing, if one may not move; then
    one UPDATE of status and updated_at and one INSERT of their history rows.

    `also_save` names further fields, set by the caller on each instance, written in the same
    UPDATE (for several orders, one UPDATE with a value per row); `message` may be a function
    of the order, for a history message of its own. `then` are moves that follow at once, as for `create`: the row
    ends in the last of them while the instance keeps `to_status`. `at` stamps updated_at and
    the history (default: now), for a caller that stamps another field with the same moment."""
    batch = [orders] if isinstance(orders, Order) else list(orders)
    if not batch:
        return
    for order in batch:
        if not can_transition(order.status, to_status):
            raise InvalidState(status=order.status, operation=f"move to {to_status}")
    path = _checked_path(to_status, then)
    now = at or timezone.now()
    history = []
    for order in batch:
        text = message(order) if callable(message) else message
        history.append((order.pk, order.status, to_status, actor, text))
        history.extend(_step_rows(order.pk, then, from_status=to_status))
    with transaction.atomic(savepoint=False):
        if also_save and len(batch) > 1:
            for order in batch:
                order.status, order.updated_at = path[-1], now
            update_rows(batch, ["status", "updated_at", *also_save])
        else:
            Order.objects.filter(pk__in=[order.pk for order in batch]).update(
                status=path[-1], updated_at=now, **{field: getattr(batch[0], field) for field in also_save}
            )
        _write_history(history, now)
    for order in batch:
        order.status = to_status
        order.updated_at = now


def _checked_path(status: str, then: Sequence[Step]) -> list[str]:
    """The statuses an order goes through from `status` along `then`, each move checked."""
    path = [status]
    for step in then:
        if not can_transition(path[-1], step.to_status):
            raise InvalidState(status=path[-1], operation=f"move to {step.to_status}")
        path.append(step.to_status)
    return path


HistoryRow = tuple[int, str, str, str, str]  # order pk, from, to, actor, message


def _step_rows(order_pk: int, then: Sequence[Step], *, from_status: str = INITIAL_STATUS) -> list[HistoryRow]:
    rows = []
    for step in then:
        rows.append((order_pk, from_status, step.to_status, step.actor, step.message))
        from_status = step.to_status
    return rows


def _write_history(rows: list[HistoryRow], now: dt.datetime) -> None:
    """One INSERT for every row, stamped with one moment (ordered by id within it)."""
    OrderStatusChange.objects.bulk_create(
        OrderStatusChange(order_id=pk, from_status=f, to_status=t, at=now, actor=actor, message=message)
        for pk, f, t, actor, message in rows
    )
