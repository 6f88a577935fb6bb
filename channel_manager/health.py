"""Old dotted path of the heartbeat task (see channel_manager.tasks)."""

from channel_manager.ops.health import heartbeat  # noqa: F401
