"""The staff groups of the admin, each with only what it needs (idempotent: groups and
permissions are created when missing, and permissions are only ever added to a group).

- Support works orders: sees them with their lines, wallets, history and events, and re-issues,
  confirms and deletes them through the admin actions (change_order / delete_order: the order
  form itself stays read-only). It sees partners, the catalog and capacity, wallets and the
  notification events, but no API keys and no webhook subscriptions (their signing secrets).
- Finance sees orders and partners and exports them (the custom permission export_orders).

Neither group gets django_q permissions: the task queue pages stay with superusers.
"""

from django.db import migrations

EXPORT_CODENAME = "export_orders"
EXPORT_NAME = "Can export orders"

GROUPS = {
    "Support": {
        "channel_manager": ["view_order", "change_order", "delete_order", "view_partner"],
        "catalog": ["view_venue", "view_item", "view_timeslot", "view_packagecomponent", "view_packagecoupon",
                    "view_capacity"],
        "wallets": ["view_wallet", "view_asset"],
        # Events, not subscriptions: a subscription's page shows its signing secret.
        "notifications": ["view_event"],
    },
    "Finance": {
        "channel_manager": ["view_order", "view_partner", EXPORT_CODENAME],
    },
}


def create_staff_groups(apps, schema_editor=None, using="default"):
    """Also callable at run time with django.apps.apps (tests that flush the database)."""
    from django.contrib.auth.management import create_permissions

    db = schema_editor.connection.alias if schema_editor is not None else using
    # Permissions are normally created after all migrations (post_migrate): make them now.
    for label in {label for groups in GROUPS.values() for label in groups}:
        app_config = apps.get_app_config(label)
        # A migration's app configs (AppConfigStub) have no models_module, which
        # create_permissions takes as "this app has no models".
        was = getattr(app_config, "models_module", None)
        app_config.models_module = was or True
        try:
            create_permissions(app_config, verbosity=0, interactive=False, using=db, apps=apps)
        finally:
            app_config.models_module = was

    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    order_type, _ = ContentType.objects.using(db).get_or_create(app_label="channel_manager", model="order")
    Permission.objects.using(db).get_or_create(
        content_type=order_type, codename=EXPORT_CODENAME, defaults={"name": EXPORT_NAME}
    )
    for name, wanted in GROUPS.items():
        group, _ = Group.objects.using(db).get_or_create(name=name)
        permissions = []
        for app_label, codenames in wanted.items():
            found = list(
                Permission.objects.using(db).filter(content_type__app_label=app_label, codename__in=codenames)
            )
            missing = set(codenames) - {p.codename for p in found}
            if missing:
                raise RuntimeError(f"permissions missing for group {name}: {sorted(missing)} ({app_label})")
            permissions.extend(found)
        group.permissions.add(*permissions)


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("channel_manager", "0002_issuance_schedules"),
        ("catalog", "0001_initial"),
        ("wallets", "0001_initial"),
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_staff_groups, migrations.RunPython.noop),
    ]
