"""Wallets carry their own validity and a snapshot of what their holder is shown; filled from the
orders by channel_manager 0007_link_wallets."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("wallets", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="validity",
            field=models.CharField(choices=[("pending", "Pending"), ("valid", "Valid"), ("void", "Void")], default="pending", max_length=8),
        ),
        migrations.AddField(
            model_name="wallet",
            name="holder_name",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="holder_language",
            field=models.TextField(blank=True, help_text="As the customer gave it.", null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="holder_country",
            field=models.TextField(blank=True, help_text="As the customer gave it.", null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="sell_to_order_reference",
            field=models.CharField(blank=True, default="", max_length=64, verbose_name="sellToOrderReference"),
        ),
        migrations.AddField(
            model_name="wallet",
            name="buy_from_order_reference",
            field=models.CharField(blank=True, default="", max_length=32, verbose_name="buyFromOrderReference"),
        ),
        migrations.AlterField(
            model_name="wallet",
            name="position",
            field=models.PositiveIntegerField(help_text="0-based position among the wallets issued together."),
        ),
    ]
