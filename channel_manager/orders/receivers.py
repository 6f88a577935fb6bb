"""What the order side does when a lower layer tells it something (wallets may not import
orders: they send signals, connected here from ChannelManagerConfig.ready)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connections
from django.utils import timezone

from channel_manager.orders.issuance import announce_orders
from channel_manager.orders.models import OrderRedemption, OrderWallet

ORDER_REDEEMED = "ota_cm_order_redeemed"


def announce_first_redemption(*, wallet_ids: Sequence[int], at: dt.datetime, **kwargs: object) -> list[int]:
    """On an asset's first redemption (inside the scan's transaction), announce
    `ota_cm_order_redeemed` for each order of these wallets whose assets had not been used
    before: exactly once per order, also when scans race or a batch redeems several.

    One INSERT ... ON CONFLICT DO NOTHING of the orders' OrderRedemption rows: the rows it
    inserted are the orders used for the first time, and only they are announced. A concurrent
    scan of the same order waits on the unique key until this transaction ends, then inserts
    nothing. Returns the pks of the orders announced."""
    connection = connections[OrderRedemption.objects.db]
    qn = connection.ops.quote_name
    marker, link = OrderRedemption._meta, OrderWallet._meta
    wallet_ids = list(wallet_ids)
    if not wallet_ids:
        return []
    sql = (
        f"INSERT INTO {qn(marker.db_table)} ({qn('order_pk')}, {qn('first_redeemed_at')}, {qn('recorded_at')}) "
        f"SELECT DISTINCT {qn(link.get_field('order').column)}, %s, %s FROM {qn(link.db_table)} "
        f"WHERE {qn(link.get_field('wallet').column)} IN ({', '.join(['%s'] * len(wallet_ids))}) "
        f"ON CONFLICT ({qn('order_pk')}) DO NOTHING RETURNING {qn('order_pk')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [at, timezone.now(), *wallet_ids])
        first = sorted(row[0] for row in cursor.fetchall())
    if first:
        announce_orders(event_type=ORDER_REDEEMED, order_pks=first)
    return first
