"""Reads of orders, each a fixed number of queries whatever the number of wallets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet

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
    """One order's live wallets still to be minted (see unminted_shells_of); one query."""
    return unminted_shells_of(order_pks=[order.pk]).get(order.pk, [])


def parse_order_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def get_partner_order(
    *, partner: Partner, order_id: str, with_contents: bool = True, livemode: bool = True
) -> Order | None:
    """The partner's own order of this mode, or None: another partner's order, or one of the
    other mode (a test order asked for with a live key, and the reverse), is as absent as a
    missing one."""
    parsed = parse_order_id(order_id)
    if parsed is None:
        return None
    queryset = Order.objects.filter(partner=partner, livemode=livemode, order_id=parsed)
    if with_contents:
        queryset = orders_with_contents(queryset)
    return queryset.first()


def find_partner_orders(
    *,
    partner: Partner,
    livemode: bool = True,
    sell_to_order_reference: str | None = None,
    status: str | None = None,
    updated_since: dt.datetime | None = None,
) -> QuerySet[Order]:
    queryset = Order.objects.filter(partner=partner, livemode=livemode)
    if sell_to_order_reference:
        queryset = queryset.filter(sell_to_order_reference=sell_to_order_reference)
    if status:
        queryset = queryset.filter(status=status)
    if updated_since:
        queryset = queryset.filter(updated_at__gte=updated_since)
    return queryset.order_by("-id")


DEFAULT_MAX_WALLETS_PER_PAGE = 1000


@dataclass(frozen=True)
class OrderPage:
    """One page of findOrders: the orders with their contents, and where the next page starts
    (the pk of the last order taken), or None when there is nothing after it."""

    orders: list[Order]
    next_after_pk: int | None


def max_wallets_per_page() -> int:
    return max(1, int(getattr(settings, "MAX_WALLETS_PER_PAGE", DEFAULT_MAX_WALLETS_PER_PAGE)))


def order_page(queryset: QuerySet[Order], *, limit: int, max_wallets: int | None = None) -> OrderPage:
    """Up to `limit` orders of `queryset`, in its order, with their contents, bounded by their
    live wallets too: the page stops before the order that would take it over `max_wallets`
    (MAX_WALLETS_PER_PAGE), and always holds at least one order. So a page of large orders stays
    a few megabytes instead of loading `limit` times MAX_WALLETS_PER_ORDER wallets. One query to
    size the orders, then orders_with_contents for the ones taken."""
    max_wallets = max_wallets_per_page() if max_wallets is None else max_wallets
    live_wallets = Count("wallet_links", filter=Q(wallet_links__wallet__destroyed_at__isnull=True))
    sized = list(queryset.annotate(cm_live_wallets=live_wallets).values_list("pk", "cm_live_wallets")[: limit + 1])
    taken: list[int] = []
    wallets = 0
    for pk, count in sized[:limit]:
        if taken and wallets + count > max_wallets:
            break
        taken.append(pk)
        wallets += count
    by_pk = {order.pk: order for order in orders_with_contents(Order.objects.filter(pk__in=taken))}
    orders = [by_pk[pk] for pk in taken if pk in by_pk]  # one deleted meanwhile is simply gone
    more = len(taken) < len(sized)
    return OrderPage(orders=orders, next_after_pk=taken[-1] if more else None)
