"""django-q2 tasks. A task takes ids, fetches, and calls a service; it may run twice."""

from __future__ import annotations

from channel_manager.kernel.logs import task_context
from notifications import delivery

DELIVER_EVENT_TASK = "notifications.tasks.deliver_event_task"
DELIVER_DUE_TASK = "notifications.tasks.deliver_due"
DELIVER_DUE_SCHEDULE_NAME = "deliver-due-webhooks"


def deliver_event_task(event_pk: int, request_id: str | None = None) -> int:
    """Send an event's due deliveries (queued after the event's transaction commits)."""
    with task_context(request_id=request_id, operation="task:deliver_event"):
        return delivery.deliver_event(event_pk=event_pk)


def deliver_due() -> int:
    """Every minute (django-q schedule "deliver-due-webhooks"): send due deliveries, retries and
    those whose task was lost or whose worker died, a bounded batch. How many were attempted."""
    return delivery.deliver_due()
