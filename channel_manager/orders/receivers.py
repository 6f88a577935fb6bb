"""What the order side does when a lower layer tells it something (wallets may not import
orders: they send signals, connected here from ChannelManagerConfig.ready)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connections
from django.utils import timezone

from channel_manager.orders.models import Order, OrderRedemption, OrderWallet
from channel_manager.orders.presenters import order_dict
from channel_manager.orders.selectors import orders_with_contents
from notifications.services import EventSpec, publish_events

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
        orders = orders_with_contents(Order.objects.filter(pk__in=first)).order_by("pk")
        publish_events(
            event_type=ORDER_REDEEMED,
            events=[
                EventSpec(
                    partner_pk=order.partner_id, subject_id=str(order.order_id), payload={"order": order_dict(order)}
                )
                for order in orders
            ],
        )
    return first
