"""Create the django-q schedules of the qcluster heartbeat (every minute; /readyz reads it) and
of housekeeping (every 15 minutes), once: a schedule that already exists, perhaps edited by
staff in the admin, is left as it is."""

from django.db import migrations

SCHEDULES = [
    # (name, func, minutes)
    ("qcluster-heartbeat", "channel_manager.health.heartbeat", 1),
    ("prune-idempotency-records", "channel_manager.housekeeping.prune_idempotency_records", 15),
    ("prune-task-results", "channel_manager.housekeeping.prune_task_results", 15),
    ("prune-delivery-attempts", "channel_manager.housekeeping.prune_delivery_attempts", 15),
    ("prune-events", "channel_manager.housekeeping.prune_events", 15),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    for name, func, minutes in SCHEDULES:
        if Schedule.objects.using(db).filter(name=name).exists():
            continue
        Schedule.objects.using(db).create(
            name=name,
            func=func,
            schedule_type="I",  # Schedule.MINUTES
            minutes=minutes,
            repeats=-1,
        )


def remove_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    for name, func, _ in SCHEDULES:
        Schedule.objects.using(db).filter(name=name, func=func).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0003_staff_groups"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_schedules, remove_schedules),
    ]
