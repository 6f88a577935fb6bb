"""Reads of orders, each a fixed number of queries whatever the number of wallets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from django.db.models import Prefetch, QuerySet

from channel_manager.kernel.models import Partner
from channel_manager.orders.models import Order, OrderLine, OrderWallet
from wallets.models import Asset
from wallets.services import Shell


def orders_with_contents(queryset: QuerySet[Order] | None = None) -> QuerySet[Order]:
    """Orders with their partner, lines, live wallets and assets: four queries for any page.
    Lines land in `live_lines` and the links to live wallets (each with its wallet) in
    `live_wallet_links`, as services leave them."""
    queryset = Order.objects.all() if queryset is None else queryset
    return queryset.select_related("partner").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("line_number"), to_attr="live_lines"),
        Prefetch(
            "wallet_links",
            queryset=OrderWallet.objects.filter(wallet__destroyed_at__isnull=True)
            .select_related("wallet")
            .order_by("line_id", "wallet__position")
            .prefetch_related(Prefetch("wallet__assets", queryset=Asset.objects.order_by("position", "id"))),
            to_attr="live_wallet_links",
        ),
    )


def order_wallet_ids(*, order: Order | int) -> QuerySet[OrderWallet]:
    """The ids of every wallet the order issued (live or void), as a subquery for the
    wallets services: no statement of its own."""
    return OrderWallet.objects.filter(order=order).values("wallet_id")


def unminted_shells_of(*, order_pks: Sequence[int]) -> dict[int, list[Shell]]:
    """The orders' live wallets still to be minted, by order pk, each with its line, in line
    order then position; one query."""
    links = (
        OrderWallet.objects.filter(
            order_id__in=order_pks, line__isnull=False, wallet__destroyed_at__isnull=True,
            wallet__minted_at__isnull=True,
        )
        .select_related("wallet")
        .order_by("order_id", "line_id", "wallet__position")
    )
    shells: dict[int, list[Shell]] = {}
    for link in links:
        shells.setdefault(link.order_id, []).append(Shell(line_pk=link.line_id, wallet=link.wallet))
    return shells


def unminted_shells(*, order: Order) -> list[Shell]:
    """The order's live wallets still to be minted, each with its line, in line order then
    position; one query."""
    links = (
        OrderWallet.objects.filter(
            order=order, line__isnull=False, wallet__destroyed_at__isnull=True, wallet__minted_at__isnull=True
        )
        .select_related("wallet")
        .order_by("line_id", "wallet__position")
    )
    return [Shell(line_pk=link.line_id, wallet=link.wallet) for link in links]


def parse_order_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def get_partner_order(*, partner: Partner, order_id: str, with_contents: bool = True) -> Order | None:
    """The partner's own order, or None: another partner's order is as absent as a missing one."""
    parsed = parse_order_id(order_id)
    if parsed is None:
        return None
    queryset = Order.objects.filter(partner=partner, order_id=parsed)
    if with_contents:
        queryset = orders_with_contents(queryset)
    return queryset.first()


def find_partner_orders(
    *,
    partner: Partner,
    sell_to_order_reference: str | None = None,
    status: str | None = None,
    updated_since: dt.datetime | None = None,
) -> QuerySet[Order]:
    queryset = Order.objects.filter(partner=partner)
    if sell_to_order_reference:
        queryset = queryset.filter(sell_to_order_reference=sell_to_order_reference)
    if status:
        queryset = queryset.filter(status=status)
    if updated_since:
        queryset = queryset.filter(updated_at__gte=updated_since)
    return queryset.order_by("-id")
