"""Minting and destroying wallets, and the capacity their tickets hold.

Capacity is kept symmetric by deriving it from tickets, through one function:

- at issuance, `plan_mint` lays out every asset each shell will hold (in memory, before
  anything is written); the capacity to reserve is `capacity_claims(<the planned tickets>)`, and
  `mint` writes exactly those planned assets;
- on destroy, the capacity to release is `capacity_claims(<the live minted ticket assets>)`,
  read back from the database.

So what is released is what was minted, which is what was reserved, whatever happened to the
catalog in between (a package that changed its components, an item that became timed). Coupons
hold no capacity. A wallet is minted at most once: only shells with `minted_at` NULL are
planned, and minting happens in the same transaction as the reservation.

Every function here runs a fixed number of queries whatever the number of wallets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Item, ItemType
from catalog.services import CapacityClaim, release_capacity
from wallets.codes import new_asset_number, new_manifest_token, new_wallet_reference
from wallets.models import Asset, AssetType, Wallet

# PostgreSQL takes at most 65535 parameters per statement; an Asset row has 13 columns.
ASSET_INSERT_BATCH = 4000
WALLET_UPDATE_BATCH = 1000


# --------------------------------------------------------------------------------------------
# What a wallet holds
# --------------------------------------------------------------------------------------------


class _Line(Protocol):
    """What this module reads of a channel_manager OrderLine (it does not import orders)."""

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


def component_visits(*, line: _Line, package: Item) -> list[ComponentVisit]:
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


def wallet_contents(*, line: _Line, item: Item) -> list[AssetPlan]:
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
            valid_until=line.visit_date + dt.timedelta(days=max(coupon.valid_days, 1) - 1),
        )
        for coupon in item.coupons.all()
    )
    return contents


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


def capacity_claims(tickets: Iterable[_Ticket]) -> list[CapacityClaim]:
    """The capacity a set of assets holds: the admits of its tickets summed per (item, visit
    date, visit time), in first-seen order. Coupons hold none.

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
        CapacityClaim(item_pk=item_pk, visit_date=date, visit_time=time, quantity=quantity)
        for (item_pk, date, time), quantity in totals.items()
    ]


def minted_ticket_claims(wallets: QuerySet[Wallet]) -> list[CapacityClaim]:
    """The capacity held by the minted wallets among `wallets`; one query."""
    rows = (
        Asset.objects.filter(
            wallet__in=wallets.filter(minted_at__isnull=False), asset_type=AssetType.TICKET
        )
        .order_by("wallet_id", "position", "pk")
        .values_list("asset_type", "item_id", "visit_date", "visit_time", "admits")
    )
    return capacity_claims(TicketRow(*row) for row in rows)


def order_capacity_claims(*, order) -> list[CapacityClaim]:
    """The capacity the order's live wallets hold now; one query."""
    return minted_ticket_claims(Wallet.objects.filter(order=order, destroyed_at__isnull=True))


# --------------------------------------------------------------------------------------------
# Minting
# --------------------------------------------------------------------------------------------


@dataclass
class MintPlan:
    """The order's unminted live shells and what each will hold; nothing written yet."""

    shells: list[Wallet]
    contents: dict[int, list[AssetPlan]] = field(default_factory=dict)  # by line pk

    def planned_tickets(self, *, line_pk: int | None = None) -> Iterator[AssetPlan]:
        """Every asset the plan will write (all shells, or one line's), in write order."""
        for wallet in self.shells:
            if line_pk is None or wallet.line_id == line_pk:
                yield from self.contents[wallet.line_id]

    def claims_for_line(self, *, line_pk: int) -> list[CapacityClaim]:
        """The capacity this line's planned tickets will hold."""
        return capacity_claims(self.planned_tickets(line_pk=line_pk))

    @property
    def wallet_count(self) -> int:
        return len(self.shells)


def plan_mint(*, order, lines: Sequence[_Line], items: dict[int, Item]) -> MintPlan:
    """Lay out the minting of the order's live, not yet minted wallet shells; one query.

    `items` maps each line's pk to its catalog item (with time slots, components and coupons
    prefetched, as catalog.selectors.items_by_code gives them).
    """
    shells = list(
        Wallet.objects.filter(order=order, destroyed_at__isnull=True, minted_at__isnull=True)
        .order_by("line_id", "position")
    )
    plan = MintPlan(shells=shells)
    for line in lines:
        plan.contents[line.pk] = wallet_contents(line=line, item=items[line.pk])
    missing = {w.line_id for w in shells} - plan.contents.keys()
    if missing:
        raise ValueError(f"wallet shells of lines {sorted(missing)} were not planned")
    return plan


def mint(plan: MintPlan, *, now: dt.datetime | None = None) -> list[Wallet]:
    """Write the plan: give each shell its reference (the partner's external reference, else a
    new system one), a manifest token and its assets. One UPDATE and one INSERT (per batch)."""
    if not plan.shells:
        return []
    now = now or timezone.now()
    numbers: set[str] = set()
    assets: list[Asset] = []
    for wallet in plan.shells:
        wallet.wallet_reference_number = wallet.external_reference_number or new_wallet_reference()
        wallet.manifest_token = new_manifest_token()
        wallet.minted_at = now
        for position, spec in enumerate(plan.contents[wallet.line_id]):
            number = new_asset_number()
            while number in numbers:  # 80 random bits: never in practice, but cheap to rule out
                number = new_asset_number()
            numbers.add(number)
            assets.append(
                Asset(
                    wallet=wallet,
                    asset_type=spec.asset_type,
                    asset_number=number,
                    item=spec.item,
                    item_code=spec.item.item_id,
                    name=spec.item.name,
                    visit_date=spec.visit_date,
                    visit_time=spec.visit_time,
                    admits=spec.admits,
                    description=spec.description,
                    valid_until=spec.valid_until,
                    position=position,
                )
            )
    _save_minted(plan.shells, now=now)
    Asset.objects.bulk_create(assets, batch_size=ASSET_INSERT_BATCH)
    return plan.shells


def _save_minted(wallets: list[Wallet], *, now: dt.datetime) -> None:
    """Store the wallets' references, tokens and minted_at: one UPDATE per batch.

    On PostgreSQL an UPDATE ... FROM (VALUES ...), which costs ~10 ms for 500 wallets where
    Django's bulk_update (a CASE per column) spends over a second building expressions.
    """
    connection = connections[Wallet.objects.db]
    if connection.vendor != "postgresql":
        Wallet.objects.bulk_update(
            wallets, ["wallet_reference_number", "manifest_token", "minted_at"],
            batch_size=WALLET_UPDATE_BATCH,
        )
        return
    qn = connection.ops.quote_name
    table = qn(Wallet._meta.db_table)
    ref = qn(Wallet._meta.get_field("wallet_reference_number").column)
    token = qn(Wallet._meta.get_field("manifest_token").column)
    minted = qn(Wallet._meta.get_field("minted_at").column)
    pk = qn(Wallet._meta.pk.column)
    with connection.cursor() as cursor:
        for start in range(0, len(wallets), WALLET_UPDATE_BATCH):
            batch = wallets[start : start + WALLET_UPDATE_BATCH]
            rows = ", ".join(["(%s::bigint, %s::varchar, %s::varchar)"] * len(batch))
            params: list[object] = [now]
            for wallet in batch:
                params.extend((wallet.pk, wallet.wallet_reference_number, wallet.manifest_token))
            cursor.execute(
                f"UPDATE {table} AS w SET {ref} = v.ref, {token} = v.token, {minted} = %s "
                f"FROM (VALUES {rows}) AS v(id, ref, token) WHERE w.{pk} = v.id",
                params,
            )


def mint_wallets(*, order, lines: Sequence[_Line], items: dict[int, Item]) -> list[Wallet]:
    """Plan and mint in one call (three queries). The caller reserves the capacity of the
    minted tickets (`capacity_claims`) in the same transaction; issuance uses `plan_mint`,
    reserves `plan.claims_for_line(...)` line by line, then calls `mint(plan)`."""
    return mint(plan_mint(order=order, lines=lines, items=items))


# --------------------------------------------------------------------------------------------
# Destroying
# --------------------------------------------------------------------------------------------


def _require_atomic() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("wallets must be destroyed inside transaction.atomic()")


def destroy_order_wallets(*, order, now: dt.datetime | None = None) -> list[CapacityClaim]:
    """Mark every live wallet of the order destroyed (one UPDATE) and return the capacity their
    minted tickets held, for the caller to release in the same transaction.

    Call it inside transaction.atomic() with the order row locked (select_for_update), so that
    no issuance mints the order's wallets in between. Destroyed wallets keep their row and
    token (their manifest URL answers 410) and free their external reference numbers.
    """
    _require_atomic()
    live = Wallet.objects.filter(order=order, destroyed_at__isnull=True)
    claims = minted_ticket_claims(live)
    live.update(destroyed_at=now or timezone.now())
    return claims


def destroy_wallets_and_release(*, order, now: dt.datetime | None = None) -> list[CapacityClaim]:
    """destroy_order_wallets, then release the capacity it returns; same rules."""
    claims = destroy_order_wallets(order=order, now=now)
    if claims:
        release_capacity(claims=claims)
    return claims


__all__ = [
    "AssetPlan",
    "ComponentVisit",
    "MintPlan",
    "TicketRow",
    "capacity_claims",
    "component_visits",
    "destroy_order_wallets",
    "destroy_wallets_and_release",
    "is_timed",
    "mint",
    "mint_wallets",
    "minted_ticket_claims",
    "order_capacity_claims",
    "plan_mint",
    "wallet_contents",
]
