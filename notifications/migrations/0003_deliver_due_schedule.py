"""Create the django-q schedule that sends due webhook deliveries every minute (once: a schedule
that already exists, perhaps edited by staff in the admin, is left as it is)."""

from django.db import migrations

SCHEDULE_NAME = "deliver-due-webhooks"
SCHEDULE_FUNC = "notifications.tasks.deliver_due"


def create_deliver_due_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    if Schedule.objects.using(db).filter(name=SCHEDULE_NAME).exists():
        return
    Schedule.objects.using(db).create(
        name=SCHEDULE_NAME,
        func=SCHEDULE_FUNC,
        schedule_type="I",  # Schedule.MINUTES
        minutes=1,
        repeats=-1,
    )


def remove_deliver_due_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    Schedule.objects.using(db).filter(name=SCHEDULE_NAME, func=SCHEDULE_FUNC).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0002_deliveries"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_deliver_due_schedule, remove_deliver_due_schedule),
    ]
