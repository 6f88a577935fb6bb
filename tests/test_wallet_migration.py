"""The migration that gives wallets their own validity and snapshot and moves their order and
line into OrderWallet links: rows written under the old schema come out linked, with the
validity and the manifest they had."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from channel_manager.orders.models import OrderWallet
from tests.factories import demo_catalog
from wallets.models import Wallet, WalletValidity

OLD_SCHEMA = [("channel_manager", "0005_task_paths"), ("wallets", "0001_initial")]
JSON = {"HTTP_ACCEPT": "application/json"}
ADA = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "country": "GB", "language": "fr"}


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor


@pytest.fixture
def old_schema():
    """The apps as they were before wallets stood on their own; the database is left migrated
    to the latest state whatever happens in the test."""
    executor = _migrate(OLD_SCHEMA)
    try:
        yield executor.loader.project_state(OLD_SCHEMA).apps
    finally:
        _migrate(None)


@pytest.mark.django_db(transaction=True)
def test_wallets_get_links_validity_and_snapshots_from_their_orders(old_schema, anon_client):
    apps = old_schema
    Partner = apps.get_model("channel_manager", "Partner")
    Order = apps.get_model("channel_manager", "Order")
    OrderLine = apps.get_model("channel_manager", "OrderLine")
    OldWallet = apps.get_model("wallets", "Wallet")
    Asset = apps.get_model("wallets", "Asset")
    item = demo_catalog()["DAY-ADULT"]
    partner = Partner.objects.create(partner_id="acme-travel", name="ACME Travel")
    now = timezone.now()
    day = timezone.localdate() + dt.timedelta(days=30)

    def order(reference: str, status: str, customer=None, **extra):
        return Order.objects.create(
            partner=partner, sell_to_order_reference=reference, status=status, customer=customer,
            currency="EUR", payment_reference="PAY-1" if status != "Draft" else None, **extra,
        )

    def line(of, number: int = 1, quantity: int = 1):
        return OrderLine.objects.create(
            order=of, line_number=number, item_id=item.pk, item_code="DAY-ADULT", item_type="ticket",
            quantity=quantity, visit_date=day,
        )

    def wallet(of, of_line, position: int = 0, token: str | None = None, destroyed_at=None, ref=None):
        made = OldWallet.objects.create(
            order=of, line=of_line, partner=partner, position=position, external_reference_number=ref,
            wallet_reference_number=ref or (f"W-{token}" if token else None), manifest_token=token,
            minted_at=now if token else None, destroyed_at=destroyed_at,
        )
        if token:
            Asset.objects.create(
                wallet=made, asset_type="ticket", asset_number=f"A{made.pk:09d}", item_id=item.pk,
                item_code="DAY-ADULT", name="Day ticket, adult", visit_date=day, admits=1,
            )
        return made

    issued = order("ISSUED-1", "Issued", ADA, issued_at=now)
    issued_line = line(issued, quantity=2)
    issued_wallets = [wallet(issued, issued_line, 0, "tokenIssued0000000", ref="R-1"),
                      wallet(issued, issued_line, 1, "tokenIssued1111111")]
    draft = order("DRAFT-1", "Draft", {"firstName": " Grace ", "lastName": "", "language": 7})
    draft_wallet = wallet(draft, line(draft, number=2), 0, "tokenDraft00000000")
    # A replaced line: its line row is gone (SET_NULL), its wallet destroyed but kept for the 410.
    replaced = wallet(draft, None, 0, "tokenReplaced00000", destroyed_at=now - dt.timedelta(hours=1), ref="R-1")
    cancelled = order("CANCELLED-1", "Cancelled", ADA, cancelled_at=now - dt.timedelta(minutes=5))
    cancelled_line = line(cancelled)
    cancelled_wallet = wallet(cancelled, cancelled_line, 0, "tokenCancelled0000", destroyed_at=now)
    # Defensive: a Cancelled order whose wallet was never destroyed answered 410 all the same.
    stray = wallet(cancelled, cancelled_line, 1, "tokenStray00000000")
    error = order("ERROR-1", "Error", None)
    shell = wallet(error, line(error))

    _migrate(None)

    links = {link.wallet_id: (link.order_id, link.line_id) for link in OrderWallet.objects.all()}
    assert links == {
        issued_wallets[0].pk: (issued.pk, issued_line.pk),
        issued_wallets[1].pk: (issued.pk, issued_line.pk),
        draft_wallet.pk: (draft.pk, draft_wallet.line_id),
        replaced.pk: (draft.pk, None),
        cancelled_wallet.pk: (cancelled.pk, cancelled_line.pk),
        stray.pk: (cancelled.pk, cancelled_line.pk),
        shell.pk: (error.pk, shell.line_id),
    }
    wallets = Wallet.objects.in_bulk()
    assert {pk: w.validity for pk, w in wallets.items()} == {
        issued_wallets[0].pk: WalletValidity.VALID,
        issued_wallets[1].pk: WalletValidity.VALID,
        draft_wallet.pk: WalletValidity.PENDING,
        replaced.pk: WalletValidity.VOID,
        cancelled_wallet.pk: WalletValidity.VOID,
        stray.pk: WalletValidity.VOID,
        shell.pk: WalletValidity.PENDING,
    }
    assert wallets[stray.pk].destroyed_at == cancelled.cancelled_at
    assert wallets[replaced.pk].destroyed_at == replaced.destroyed_at
    ada = wallets[issued_wallets[0].pk]
    assert (ada.holder_name, ada.holder_language, ada.holder_country) == ("Ada Lovelace", "fr", "GB")
    assert (ada.sell_to_order_reference, ada.buy_from_order_reference) == ("ISSUED-1", f"CM-{issued.pk:08d}")
    grace = wallets[draft_wallet.pk]
    assert (grace.holder_name, grace.holder_language, grace.holder_country) == ("Grace", None, None)
    nobody = wallets[shell.pk]
    assert (nobody.holder_name, nobody.sell_to_order_reference) == (None, "ERROR-1")

    # The manifests answer as they did: valid, not valid until confirmed, gone.
    body = anon_client.get("/wallets/tokenIssued0000000", **JSON).json()
    assert (body["validity"], body["holderName"]) == ("valid", "Ada Lovelace")
    assert body["order"] == {"sellToOrderReference": "ISSUED-1", "buyFromOrderReference": f"CM-{issued.pk:08d}",
                             "partnerId": "acme-travel"}
    assert body["assets"][0]["assetNumber"] == f"A{issued_wallets[0].pk:09d}"
    assert anon_client.get("/wallets/tokenDraft00000000", **JSON).json()["validity"] == "not_valid_until_confirmed"
    for gone in ("tokenReplaced00000", "tokenCancelled0000", "tokenStray00000000"):
        assert anon_client.get(f"/wallets/{gone}", **JSON).status_code == 410


@pytest.mark.django_db(transaction=True)
def test_going_back_puts_order_and_line_on_the_wallets_again(old_schema):
    apps = old_schema
    Partner = apps.get_model("channel_manager", "Partner")
    Order = apps.get_model("channel_manager", "Order")
    OrderLine = apps.get_model("channel_manager", "OrderLine")
    OldWallet = apps.get_model("wallets", "Wallet")
    item = demo_catalog()["DAY-ADULT"]
    partner = Partner.objects.create(partner_id="acme-travel", name="ACME Travel")
    order = Order.objects.create(partner=partner, sell_to_order_reference="R", status="Submitted", currency="EUR")
    line = OrderLine.objects.create(order=order, line_number=1, item_id=item.pk, item_code="DAY-ADULT",
                                    item_type="ticket", quantity=1, visit_date=timezone.localdate())
    kept = OldWallet.objects.create(order=order, line=line, partner=partner, position=0)
    orphan = OldWallet.objects.create(order=order, line=None, partner=partner, position=0, destroyed_at=timezone.now())

    _migrate(None)
    back = _migrate(OLD_SCHEMA).loader.project_state(OLD_SCHEMA).apps.get_model("wallets", "Wallet")

    assert {w.pk: (w.order_id, w.line_id) for w in back.objects.all()} == {
        kept.pk: (order.pk, line.pk), orphan.pk: (order.pk, None),
    }
