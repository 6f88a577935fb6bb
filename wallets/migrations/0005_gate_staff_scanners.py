"""The scanner page's staff: a Gate staff member scans as their own device (GateDevice.user),
and the "Gate" staff group, which sees gate devices and the scan log (with its attendance page)
and uses the scanner page (scan_at_gate), nothing else. Idempotent like 0003_staff_groups of
channel_manager: the group and permissions are created when missing, permissions only added."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

GATE_GROUP = "Gate"
GATE_PERMISSIONS = ["view_gatedevice", "view_gatescan", "scan_at_gate"]


def create_gate_group(apps, schema_editor=None, using="default"):
    """Also callable at run time with django.apps.apps (tests that flush the database)."""
    from django.contrib.auth.management import create_permissions

    db = schema_editor.connection.alias if schema_editor is not None else using
    # Permissions are normally created after all migrations (post_migrate): make them now. A
    # migration's app config has no models_module, which create_permissions takes as "no models".
    app_config = apps.get_app_config("wallets")
    was = getattr(app_config, "models_module", None)
    app_config.models_module = was or True
    try:
        create_permissions(app_config, verbosity=0, interactive=False, using=db, apps=apps)
    finally:
        app_config.models_module = was
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    found = list(Permission.objects.using(db).filter(content_type__app_label="wallets",
                                                     codename__in=GATE_PERMISSIONS))
    missing = set(GATE_PERMISSIONS) - {p.codename for p in found}
    if missing:
        raise RuntimeError(f"permissions missing for group {GATE_GROUP}: {sorted(missing)}")
    group, _ = Group.objects.using(db).get_or_create(name=GATE_GROUP)
    group.permissions.add(*found)


class Migration(migrations.Migration):

    dependencies = [
        ('wallets', '0004_gate_devices_and_scans'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='gatescan',
            options={'ordering': ['-scanned_at', '-id'], 'permissions': [('scan_at_gate', 'Can scan at the gate with the scanner page')]},
        ),
        migrations.AddField(
            model_name='gatedevice',
            name='user',
            field=models.OneToOneField(blank=True, help_text="Set for a staff member's own scanner (the scanner page under a staff login).", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='gate_device', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(create_gate_group, migrations.RunPython.noop),
    ]
