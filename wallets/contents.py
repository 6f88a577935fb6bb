"""What a wallet holds, and the capacity its tickets hold.

`wallet_contents` lays out the assets every wallet of an order line holds (a ticket, a group
ticket, or a package's component tickets and coupons); `capacity_claims` is the one rule that
turns tickets into capacity, used both to reserve at issuance and to release on destroy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from django.db.models import QuerySet

from catalog.models import Item, ItemType
from catalog.services import CapacityClaim
from channel_manager.kernel.dates import LATEST_DAY
from wallets.models import Asset, AssetType, Wallet

# --------------------------------------------------------------------------------------------
# What a wallet holds
# --------------------------------------------------------------------------------------------


class OrderLineLike(Protocol):
    """What this module reads of an order line (it does not import orders)."""

    pk: int
    item_type: str
    quantity: int
    visit_date: dt.date
    visit_time: dt.time | None
    component_schedule: list


@dataclass(frozen=True)
class ComponentVisit:
    """When a package line visits one of its components."""

    component: Item
    visit_date: dt.date
    visit_time: dt.time | None
    scheduled: bool  # True when the line's componentSchedule names this component


@dataclass(frozen=True)
class AssetPlan:
    """One asset a wallet will hold, before it has a number."""

    asset_type: str
    item: Item
    visit_date: dt.date
    visit_time: dt.time | None
    admits: int | None = None
    description: str = ""
    valid_until: dt.date | None = None

    @property
    def item_id(self) -> int:
        return self.item.pk


def is_timed(item: Item) -> bool:
    """A timed item has time slots (uses the prefetched `time_slots` when there is one)."""
    return bool(item.time_slots.all())


def _parse_time(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None


def component_visits(*, line: OrderLineLike, package: Item) -> list[ComponentVisit]:
    """The package's components, in package order, each with its visit date and time.

    A component named in the line's componentSchedule takes that entry's date and time.
    Others take the line's date, and the line's time when the component is timed: an untimed
    component (a day ticket in a park-and-show package) ignores the time meant for the show.
    """
    schedule = {entry.get("itemId"): entry for entry in (line.component_schedule or [])}
    visits = []
    for link in package.components.all():
        component = link.component
        entry = schedule.get(component.item_id)
        if entry is not None:
            visits.append(
                ComponentVisit(
                    component=component,
                    visit_date=dt.date.fromisoformat(entry["visitDate"]),
                    visit_time=_parse_time(entry.get("visitTime")),
                    scheduled=True,
                )
            )
        else:
            visits.append(
                ComponentVisit(
                    component=component,
                    visit_date=line.visit_date,
                    visit_time=line.visit_time if is_timed(component) else None,
                    scheduled=False,
                )
            )
    return visits


def wallet_contents(*, line: OrderLineLike, item: Item) -> list[AssetPlan]:
    """The assets one wallet of the line holds (every wallet of a line holds the same).

    ticket: one ticket admitting 1; group ticket: one ticket admitting `quantity`;
    package: one ticket admitting 1 per component, then one coupon per package coupon,
    valid from the line's visit date for `validDays` days.
    """
    if item.item_type == ItemType.TICKET:
        return [AssetPlan(AssetType.TICKET, item, line.visit_date, line.visit_time, admits=1)]
    if item.item_type == ItemType.GROUP_TICKET:
        admits = line.quantity
        return [AssetPlan(AssetType.TICKET, item, line.visit_date, line.visit_time, admits=admits)]
    contents = [
        AssetPlan(AssetType.TICKET, visit.component, visit.visit_date, visit.visit_time, admits=1)
        for visit in component_visits(line=line, package=item)
    ]
    contents.extend(
        AssetPlan(
            AssetType.COUPON,
            item,
            line.visit_date,
            None,
            description=coupon.description,
            valid_until=coupon_valid_until(line.visit_date, coupon.valid_days),
        )
        for coupon in item.coupons.all()
    )
    return contents


def coupon_valid_until(visit_date: dt.date, valid_days: int) -> dt.date:
    """A coupon's last valid day: `valid_days` days from the visit date, the visit day counting
    as the first. Never after the calendar's LATEST_DAY (nor before the visit), so that neither
    this sum nor the pass's expiry (the day after) can overflow, whatever the catalog says."""
    room = max((LATEST_DAY - visit_date).days, 0)
    return visit_date + dt.timedelta(days=min(max(valid_days, 1) - 1, room))


# --------------------------------------------------------------------------------------------
# Capacity held by tickets
# --------------------------------------------------------------------------------------------


class _Ticket(Protocol):
    asset_type: str
    item_id: int
    visit_date: dt.date
    visit_time: dt.time | None
    admits: int | None


class TicketRow(NamedTuple):
    asset_type: str
    item_id: int
    visit_date: dt.date
    visit_time: dt.time | None
    admits: int | None


def capacity_claims(tickets: Iterable[_Ticket], *, livemode: bool = True) -> list[CapacityClaim]:
    """The capacity a set of assets holds: the admits of its tickets summed per (item, visit
    date, visit time), in first-seen order, on the live pool or (livemode False) the test pool.
    Coupons hold none.

    The one rule for both directions: issuance reserves `capacity_claims(planned tickets)` and
    destroy releases `capacity_claims(live minted tickets)`.
    """
    totals: dict[tuple[int, dt.date, dt.time | None], int] = {}
    for ticket in tickets:
        if ticket.asset_type != AssetType.TICKET or not ticket.admits:
            continue
        key = (ticket.item_id, ticket.visit_date, ticket.visit_time)
        totals[key] = totals.get(key, 0) + ticket.admits
    return [
        CapacityClaim(item_pk=item_pk, visit_date=date, visit_time=time, quantity=quantity, livemode=livemode)
        for (item_pk, date, time), quantity in totals.items()
    ]


def minted_ticket_claims(wallets: QuerySet[Wallet]) -> list[CapacityClaim]:
    """The capacity held by the minted wallets among `wallets`; one query."""
    rows = (
        Asset.objects.filter(
            wallet__in=wallets.filter(minted_at__isnull=False), asset_type=AssetType.TICKET
        )
        .order_by("wallet_id", "position", "pk")
        .values_list("wallet__livemode", "asset_type", "item_id", "visit_date", "visit_time", "admits")
    )
    by_mode: dict[bool, list[TicketRow]] = {}
    for livemode, *ticket in rows:
        by_mode.setdefault(livemode, []).append(TicketRow(*ticket))
    # Each wallet gives back to the pool it was sold from: test wallets to the test pool.
    return [claim for livemode, tickets in by_mode.items() for claim in capacity_claims(tickets, livemode=livemode)]
