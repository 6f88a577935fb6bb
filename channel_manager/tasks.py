"""Old dotted paths of django-q tasks, for tasks queued before the code moved to
channel_manager.orders (the queue stores a task's function by its path)."""

from channel_manager.orders.tasks import issue_order_task, sweep_stuck_orders  # noqa: F401
