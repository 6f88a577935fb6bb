"""Old dotted paths of the housekeeping tasks (see channel_manager.tasks)."""

from channel_manager.ops.housekeeping import (  # noqa: F401
    prune_delivery_attempts,
    prune_events,
    prune_idempotency_records,
    prune_task_results,
)
