"""Wallets no longer point at orders or lines (channel_manager 0007 moved those into OrderWallet
links); void and destroyed go together. Backwards, the links fill the old columns again."""

import django.db.models.deletion
from django.db import migrations, models

BATCH = 2000


def restore_order_and_line(apps, schema_editor) -> None:
    Wallet = apps.get_model("wallets", "Wallet")
    OrderWallet = apps.get_model("channel_manager", "OrderWallet")
    batch: list = []
    for link in OrderWallet.objects.order_by("pk").iterator(chunk_size=BATCH):
        batch.append(Wallet(pk=link.wallet_id, order_id=link.order_id, line_id=link.line_id))
        if len(batch) >= BATCH:
            Wallet.objects.bulk_update(batch, ["order", "line"])
            batch = []
    if batch:
        Wallet.objects.bulk_update(batch, ["order", "line"])


class Migration(migrations.Migration):

    dependencies = [
        ("wallets", "0002_wallet_validity_and_snapshot"),
        ("channel_manager", "0007_link_wallets"),
    ]

    operations = [
        # Nullable first, so that going back can add the column before refilling it.
        migrations.AlterField(
            model_name="wallet",
            name="order",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="wallets", to="channel_manager.order"),
        ),
        migrations.RunPython(migrations.RunPython.noop, restore_order_and_line),
        migrations.RemoveField(
            model_name="wallet",
            name="line",
        ),
        migrations.RemoveField(
            model_name="wallet",
            name="order",
        ),
        migrations.AlterModelOptions(
            name="wallet",
            options={"ordering": ["id"]},
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.CheckConstraint(condition=models.Q(models.Q(("destroyed_at__isnull", False), ("validity", "void")), models.Q(models.Q(("validity", "void"), _negated=True), ("destroyed_at__isnull", True)), _connector="OR"), name="wallet_void_when_destroyed"),
        ),
    ]
