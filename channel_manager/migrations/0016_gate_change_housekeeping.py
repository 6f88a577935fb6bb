"""The housekeeping schedule that prunes the gate's change feed (channel_manager.ops.housekeeping
.prune_gate_changes), made once like the others; staff may change it in the admin."""

from django.db import migrations

SCHEDULE_NAME = "prune-gate-changes"
SCHEDULE_FUNC = "channel_manager.ops.housekeeping.prune_gate_changes"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    if not Schedule.objects.using(db).filter(name=SCHEDULE_NAME).exists():
        Schedule.objects.using(db).create(
            name=SCHEDULE_NAME, func=SCHEDULE_FUNC, schedule_type="I", minutes=15, repeats=-1,
        )


def remove_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.using(schema_editor.connection.alias).filter(name=SCHEDULE_NAME, func=SCHEDULE_FUNC).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0015_order_redemption"),
        ("wallets", "0008_gate_change_feed"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_schedule, remove_schedule),
    ]
