"""Draft holds, continued: the django-q schedule that expires them every minute (created once: a
schedule that already exists, perhaps edited by staff in the admin, is left as it is), and a hold
for the Draft orders that exist already. Those never had one; they get a full hold from now, as
their partners could not have known, rather than expiring at once on deployment."""

import datetime as dt

from django.db import migrations
from django.utils import timezone

SCHEDULE_NAME = "expire-draft-holds"
SCHEDULE_FUNC = "channel_manager.orders.tasks.expire_draft_holds_task"


def create_schedule_and_holds(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Partner = apps.get_model("channel_manager", "Partner")
    Order = apps.get_model("channel_manager", "Order")
    db = schema_editor.connection.alias
    if not Schedule.objects.using(db).filter(name=SCHEDULE_NAME).exists():
        Schedule.objects.using(db).create(
            name=SCHEDULE_NAME,
            func=SCHEDULE_FUNC,
            schedule_type="I",  # Schedule.MINUTES
            minutes=1,
            repeats=-1,
        )
    now = timezone.now()
    for partner_pk, minutes in Partner.objects.using(db).filter(draft_hold_minutes__gt=0).values_list(
        "pk", "draft_hold_minutes"
    ):
        Order.objects.using(db).filter(partner_id=partner_pk, status="Draft", hold_expires_at__isnull=True).update(
            hold_expires_at=now + dt.timedelta(minutes=minutes)
        )


def remove_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    Schedule.objects.using(db).filter(name=SCHEDULE_NAME, func=SCHEDULE_FUNC).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0011_draft_holds"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_schedule_and_holds, remove_schedule),
    ]
