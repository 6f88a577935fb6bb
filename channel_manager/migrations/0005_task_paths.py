"""The code moved into channel_manager.kernel / .orders / .ops: point the django-q schedules at
the new dotted paths (tasks already queued under the old paths run through the shims in
channel_manager.tasks, channel_manager.health and channel_manager.housekeeping)."""

from django.db import migrations

MOVED = {
    "channel_manager.tasks.sweep_stuck_orders": "channel_manager.orders.tasks.sweep_stuck_orders",
    "channel_manager.health.heartbeat": "channel_manager.ops.health.heartbeat",
    "channel_manager.housekeeping.prune_idempotency_records": "channel_manager.ops.housekeeping.prune_idempotency_records",
    "channel_manager.housekeeping.prune_task_results": "channel_manager.ops.housekeeping.prune_task_results",
    "channel_manager.housekeeping.prune_delivery_attempts": "channel_manager.ops.housekeeping.prune_delivery_attempts",
    "channel_manager.housekeeping.prune_events": "channel_manager.ops.housekeeping.prune_events",
}


def _move(apps, schema_editor, mapping):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    for old, new in mapping.items():
        Schedule.objects.using(db).filter(func=old).update(func=new)


def forward(apps, schema_editor):
    _move(apps, schema_editor, MOVED)


def backward(apps, schema_editor):
    _move(apps, schema_editor, {new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0004_housekeeping_schedules"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
