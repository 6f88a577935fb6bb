"""Tombstones of deleted orders: the housekeeping schedule that prunes them after
TOMBSTONE_RETENTION_DAYS (every 15 minutes, like the others; created once, left alone if staff
edited it), and the Support group's permission to search them in the admin (view_deletedorder).
Finance reads deleted orders through the export (export_orders), not this page."""

from django.db import migrations

SCHEDULE_NAME = "prune-deleted-orders"
SCHEDULE_FUNC = "channel_manager.ops.housekeeping.prune_deleted_orders"


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


def grant_support_view(apps, schema_editor=None, using="default"):
    """Also callable at run time with django.apps.apps (tests that flush the database), after
    0003's create_staff_groups."""
    from django.contrib.auth.management import create_permissions

    db = schema_editor.connection.alias if schema_editor is not None else using
    # Permissions are normally created after all migrations (post_migrate): make them now.
    app_config = apps.get_app_config("channel_manager")
    was = getattr(app_config, "models_module", None)
    app_config.models_module = was or True
    try:
        create_permissions(app_config, verbosity=0, interactive=False, using=db, apps=apps)
    finally:
        app_config.models_module = was
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permission = Permission.objects.using(db).get(content_type__app_label="channel_manager",
                                                  codename="view_deletedorder")
    group, _ = Group.objects.using(db).get_or_create(name="Support")
    group.permissions.add(permission)


def create_schedule_and_grant(apps, schema_editor):
    create_schedule(apps, schema_editor)
    grant_support_view(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0009_deletedorder"),
        ("channel_manager", "0005_task_paths"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_schedule_and_grant, remove_schedule),
    ]
