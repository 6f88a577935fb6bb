"""Moves each wallet's order and line into an OrderWallet link, and gives the wallet the validity
and the snapshot its manifest showed until now from its order:

- destroyed, or its order Cancelled: void (a Cancelled order's live wallet, if any, is destroyed
  at the cancellation time: its manifest answered 410 already);
- order Issued: valid; any other status: pending (a Draft's wallets until confirmed);
- holder name, language and country from the order's customer, and both order references.

Backwards there is nothing to undo here: wallets 0003 puts the order and line back on the
wallets from the links before 0006 drops them.
"""

from django.db import migrations

BATCH = 2000
SNAPSHOT = ["validity", "destroyed_at", "holder_name", "holder_language", "holder_country",
            "sell_to_order_reference", "buy_from_order_reference"]


def _holder_name(customer: dict) -> str | None:
    parts = (customer.get("firstName"), customer.get("lastName"))
    return " ".join(str(p).strip() for p in parts if p and str(p).strip()) or None


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _snapshot(wallet, order) -> None:
    if wallet.destroyed_at is None and order.status == "Cancelled":
        wallet.destroyed_at = order.cancelled_at or order.updated_at
    if wallet.destroyed_at is not None:
        wallet.validity = "void"
    elif order.status == "Issued":
        wallet.validity = "valid"
    else:
        wallet.validity = "pending"
    customer = order.customer if isinstance(order.customer, dict) else {}
    wallet.holder_name = _holder_name(customer)
    wallet.holder_language = _text(customer.get("language"))
    wallet.holder_country = _text(customer.get("country"))
    wallet.sell_to_order_reference = order.sell_to_order_reference
    wallet.buy_from_order_reference = f"CM-{order.pk:08d}"


def _flush(apps, wallets: list) -> None:
    Wallet = apps.get_model("wallets", "Wallet")
    OrderWallet = apps.get_model("channel_manager", "OrderWallet")
    OrderWallet.objects.bulk_create(
        OrderWallet(order_id=w.order_id, line_id=w.line_id, wallet_id=w.pk) for w in wallets
    )
    Wallet.objects.bulk_update(wallets, SNAPSHOT)


def forward(apps, schema_editor) -> None:
    Wallet = apps.get_model("wallets", "Wallet")
    batch: list = []
    for wallet in Wallet.objects.select_related("order").order_by("pk").iterator(chunk_size=BATCH):
        _snapshot(wallet, wallet.order)
        batch.append(wallet)
        if len(batch) >= BATCH:
            _flush(apps, batch)
            batch = []
    if batch:
        _flush(apps, batch)


class Migration(migrations.Migration):

    dependencies = [
        ("channel_manager", "0006_orderwallet"),
        ("wallets", "0002_wallet_validity_and_snapshot"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
