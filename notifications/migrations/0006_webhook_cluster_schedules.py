"""Webhook deliveries have their own django-q2 cluster ("webhooks", settings.WEBHOOK_QUEUE): the
deliver-due schedule runs there (only the default cluster runs schedules whose cluster is NULL),
and a heartbeat schedule on that cluster lets /readyz tell that a webhook qcluster is alive.
A heartbeat schedule that already exists is left as it is."""

from django.db import migrations

WEBHOOK_QUEUE = "webhooks"  # settings.WEBHOOK_QUEUE, a constant: not read from settings here
DELIVER_DUE_SCHEDULE_NAME = "deliver-due-webhooks"
HEARTBEAT_SCHEDULE_NAME = "webhooks-qcluster-heartbeat"
HEARTBEAT_FUNC = "channel_manager.ops.health.heartbeat"


def to_webhook_cluster(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    Schedule.objects.using(db).filter(name=DELIVER_DUE_SCHEDULE_NAME).update(cluster=WEBHOOK_QUEUE)
    if not Schedule.objects.using(db).filter(name=HEARTBEAT_SCHEDULE_NAME).exists():
        Schedule.objects.using(db).create(
            name=HEARTBEAT_SCHEDULE_NAME,
            func=HEARTBEAT_FUNC,
            schedule_type="I",  # Schedule.MINUTES
            minutes=1,
            repeats=-1,
            cluster=WEBHOOK_QUEUE,
        )


def to_default_cluster(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    db = schema_editor.connection.alias
    Schedule.objects.using(db).filter(name=DELIVER_DUE_SCHEDULE_NAME).update(cluster=None)
    Schedule.objects.using(db).filter(name=HEARTBEAT_SCHEDULE_NAME, func=HEARTBEAT_FUNC).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0005_subscription_breaker"),
    ]

    operations = [
        migrations.RunPython(to_webhook_cluster, to_default_cluster),
    ]
