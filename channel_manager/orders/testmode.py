"""Removing test data (API.md, "Test mode"): what housekeeping prunes after
TEST_DATA_RETENTION_DAYS, and what staff purge for one partner from the admin.

Every query here is bounded to `livemode=False` rows, and wallets and events are reached only
through test orders (and checked to be test rows themselves), so no path can touch live data.
Work goes in batches of orders, each in its own short transaction: a batch locks its orders
(skipping those a worker or a partner call holds: the next run takes them), gives back the test
pool capacity their wallets hold, and deletes their wallets, events and the orders with their
lines, history and links, in a fixed number of statements per batch.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db import transaction

from channel_manager.kernel.models import IdempotencyRecord, Partner
from channel_manager.orders.models import DeletedOrder, Order, OrderWallet
from notifications.models import Event, Subscription
from wallets.models import Wallet
from wallets.services import delete_wallets, destroy_wallets_and_release

ORDER_BATCH = 500


@dataclass(frozen=True)
class PurgeCounts:
    """How many test rows of each kind: shown before a purge and returned after it."""

    orders: int = 0
    wallets: int = 0
    events: int = 0
    subscriptions: int = 0
    idempotency_records: int = 0
    deleted_orders: int = 0

    def items(self) -> list[tuple[str, int]]:
        return [
            ("test orders", self.orders), ("test wallets", self.wallets), ("test events", self.events),
            ("test subscriptions", self.subscriptions), ("test Idempotency-Key records", self.idempotency_records),
            ("tombstones of deleted test orders", self.deleted_orders),
        ]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.items())


def _test_orders(*, partner: Partner | None = None, created_before: dt.datetime | None = None):
    orders = Order.objects.filter(livemode=False)
    if partner is not None:
        orders = orders.filter(partner=partner)
    if created_before is not None:
        orders = orders.filter(created_at__lt=created_before)
    return orders


def count_test_data(*, partner: Partner) -> PurgeCounts:
    """What purge_partner_test_data would remove for this partner (six counts)."""
    return PurgeCounts(
        orders=_test_orders(partner=partner).count(),
        wallets=Wallet.objects.filter(partner=partner, livemode=False).count(),
        events=Event.objects.filter(partner=partner, livemode=False).count(),
        subscriptions=Subscription.objects.filter(partner=partner, livemode=False).count(),
        idempotency_records=IdempotencyRecord.objects.filter(partner=partner, livemode=False).count(),
        deleted_orders=DeletedOrder.objects.filter(partner=partner, livemode=False).count(),
    )


def delete_test_orders(
    *, partner: Partner | None = None, created_before: dt.datetime | None = None, limit: int = ORDER_BATCH
) -> Counter:
    """Delete up to `limit` test orders (of `partner`, created before `created_before`) with
    their wallets and events, in one transaction; counts of what went, by kind."""
    removed: Counter = Counter()
    with transaction.atomic():
        orders = list(
            _test_orders(partner=partner, created_before=created_before)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")
            .values_list("pk", "order_id", "partner_id")[:limit]
        )
        if not orders:
            return removed
        pks = [pk for pk, _, _ in orders]
        links = OrderWallet.objects.filter(order_id__in=pks).values("wallet_id")
        wallet_ids = list(Wallet.objects.filter(livemode=False, pk__in=links).values_list("pk", flat=True))
        destroy_wallets_and_release(wallet_ids=wallet_ids)  # the test pool gets its places back
        delete_wallets(wallet_ids=wallet_ids)
        _, events = Event.objects.filter(
            livemode=False, partner_id__in={p for _, _, p in orders}, subject_id__in=[str(o) for _, o, _ in orders]
        ).delete()
        _, deleted = Order.objects.filter(pk__in=pks, livemode=False).delete()
    removed["orders"] += deleted.get(Order._meta.label, 0)
    removed["wallets"] += len(wallet_ids)
    removed["events"] += events.get(Event._meta.label, 0)
    return removed


def purge_partner_test_data(*, partner: Partner) -> PurgeCounts:
    """Staff purge: every test row of one partner (orders with their wallets and events, the
    remaining test events, test subscriptions, test Idempotency-Key records, tombstones of
    deleted test orders). Live rows are never touched. Orders a worker holds right now are
    skipped (purge again once they settled)."""
    removed: Counter = Counter()
    while True:
        batch = delete_test_orders(partner=partner)
        removed.update(batch)
        if not batch:
            break
    with transaction.atomic():
        _, events = Event.objects.filter(partner=partner, livemode=False).delete()
        _, subscriptions = Subscription.objects.filter(partner=partner, livemode=False).delete()
        _, records = IdempotencyRecord.objects.filter(partner=partner, livemode=False).delete()
        _, tombstones = DeletedOrder.objects.filter(partner=partner, livemode=False).delete()
    return PurgeCounts(
        orders=removed["orders"],
        wallets=removed["wallets"],
        events=removed["events"] + events.get(Event._meta.label, 0),
        subscriptions=subscriptions.get(Subscription._meta.label, 0),
        idempotency_records=records.get(IdempotencyRecord._meta.label, 0),
        deleted_orders=tombstones.get(DeletedOrder._meta.label, 0),
    )
