"""The order side's link from its lines to the wallets they issued (wallets no longer point at
orders). Filled from the wallets' old columns by 0007_link_wallets."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0005_task_paths"),
        ("wallets", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderWallet",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("line", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="wallet_links", to="channel_manager.orderline")),
                ("order", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="wallet_links", to="channel_manager.order")),
                ("wallet", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="order_link", to="wallets.wallet")),
            ],
            options={
                "ordering": ["order", "line", "wallet"],
            },
        ),
    ]
