"""Making, minting, validating and destroying wallets, and the capacity their tickets hold.

Wallets know nothing of orders. The order side keeps which wallets belong to which of its lines
(its OrderWallet links) and calls these functions with wallet ids (a list,
or a subquery: either way one statement) on each transition: shells at submission, minting at
issuance (pending for a Draft, valid when Issued), `validate_wallets` on confirm,
`destroy_wallets` on cancel, replace and delete.

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
from typing import Any, NamedTuple

from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Item
from catalog.services import CapacityClaim, release_capacity
from channel_manager.kernel.bulk import update_rows
from wallets.codes import new_asset_number, new_manifest_token, new_wallet_reference
from wallets.contents import (  # noqa: F401  (re-exported: part of the wallets API)
    AssetPlan,
    ComponentVisit,
    OrderLineLike,
    TicketRow,
    capacity_claims,
    component_visits,
    is_timed,
    minted_ticket_claims,
    wallet_contents,
)
from wallets.gate.changes import record_voided
from wallets.models import Asset, Wallet, WalletValidity

# PostgreSQL takes at most 65535 parameters per statement; an Asset row has 13 columns.
ASSET_INSERT_BATCH = 4000

# Wallet primary keys: a list, or a queryset of them (e.g. `links.values("wallet_id")`), which
# the statement then embeds as a subquery.
WalletIds = Iterable[int] | QuerySet


def _wallets(wallet_ids: WalletIds) -> QuerySet[Wallet]:
    return Wallet.objects.filter(pk__in=wallet_ids)


# --------------------------------------------------------------------------------------------
# Shells: what the holder will be shown
# --------------------------------------------------------------------------------------------


def holder_name(customer: dict[str, Any]) -> str | None:
    """"First Last" from the customer, or None when neither is given."""
    parts = (customer.get("firstName"), customer.get("lastName"))
    return " ".join(str(p).strip() for p in parts if p and str(p).strip()) or None


@dataclass(frozen=True)
class HolderSnapshot:
    """What a wallet's holder is shown of the booking, as it stands when the wallet is made."""

    sell_to_order_reference: str
    buy_from_order_reference: str
    holder_name: str | None = None
    holder_language: str | None = None
    holder_country: str | None = None

    @classmethod
    def of_customer(
        cls, customer: Any, *, sell_to_order_reference: str, buy_from_order_reference: str
    ) -> HolderSnapshot:
        """From the customer object the partner sent (any shape: only strings are kept)."""
        customer = customer if isinstance(customer, dict) else {}
        language, country = customer.get("language"), customer.get("country")
        return cls(
            sell_to_order_reference=sell_to_order_reference,
            buy_from_order_reference=buy_from_order_reference,
            holder_name=holder_name(customer),
            holder_language=language if isinstance(language, str) else None,
            holder_country=country if isinstance(country, str) else None,
        )


def create_shells(
    *, partner_pk: int, snapshot: HolderSnapshot, references: Sequence[Sequence[str | None]], livemode: bool = True
) -> list[list[Wallet]]:
    """Insert the unminted (pending) wallet shells of a booking: one INSERT.

    `references` has one entry per group of wallets issued together (an order line), holding
    each wallet's external reference number or None; the shells come back grouped the same way,
    with their primary keys.
    """
    groups = [
        [
            Wallet(
                partner_id=partner_pk, livemode=livemode, position=position, validity=WalletValidity.PENDING,
                external_reference_number=ref, wallet_reference_number=ref,
                holder_name=snapshot.holder_name, holder_language=snapshot.holder_language,
                holder_country=snapshot.holder_country,
                sell_to_order_reference=snapshot.sell_to_order_reference,
                buy_from_order_reference=snapshot.buy_from_order_reference,
            )
            for position, ref in enumerate(group)
        ]
        for group in references
    ]
    shells = [wallet for group in groups for wallet in group]
    connection = connections[router.db_for_write(Wallet)]
    if connection.vendor != "postgresql" or not shells:
        Wallet.objects.bulk_create(shells)
        return groups
    # On PostgreSQL, SQL of our own: the ORM's compilation of a bulk insert (every field of
    # every row prepared one by one) cost createOrder more than the insert itself. What differs
    # between shells (position, reference) goes in as two arrays; the rest is the booking's.
    # The columns left out are NULL for a shell, as their fields' defaults are.
    qn = connection.ops.quote_name
    meta = Wallet._meta
    shared = ("partner", "livemode", "validity", "holder_name", "holder_language", "holder_country",
              "sell_to_order_reference", "buy_from_order_reference")
    columns = ", ".join(qn(meta.get_field(name).column) for name in (
        *shared, "position", "external_reference_number", "wallet_reference_number"))
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) "
        f"SELECT {', '.join(['%s'] * len(shared))}, w.position, w.reference, w.reference "
        "FROM unnest(%s::integer[], %s::text[]) WITH ORDINALITY AS w(position, reference, n) ORDER BY w.n "
        f"RETURNING {qn(meta.pk.column)}"
    )
    params: list[Any] = [getattr(shells[0], meta.get_field(name).attname) for name in shared]
    params += [[wallet.position for wallet in shells], [wallet.external_reference_number for wallet in shells]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # The ids are drawn from the sequence in insertion order, which is the ORDER BY's:
        # sorted, they follow `shells` whatever order RETURNING lists them in.
        pks = sorted(row[0] for row in cursor.fetchall())
    for wallet, pk in zip(shells, pks, strict=True):
        wallet.pk = pk
        wallet._state.adding = False
        wallet._state.db = connection.alias
    return groups




# --------------------------------------------------------------------------------------------
# Minting
# --------------------------------------------------------------------------------------------


class Shell(NamedTuple):
    """An unminted live wallet and the line whose contents it will hold."""

    line_pk: int
    wallet: Wallet


@dataclass
class MintPlan:
    """The unminted live shells and what each will hold; nothing written yet."""

    shells: list[Shell]
    contents: dict[int, list[AssetPlan]] = field(default_factory=dict)  # by line pk

    def planned_tickets(self, *, line_pk: int | None = None) -> Iterator[AssetPlan]:
        """Every asset the plan will write (all shells, or one line's), in write order."""
        for shell in self.shells:
            if line_pk is None or shell.line_pk == line_pk:
                yield from self.contents[shell.line_pk]

    def claims_for_line(self, *, line_pk: int) -> list[CapacityClaim]:
        """The capacity this line's planned tickets will hold."""
        return capacity_claims(self.planned_tickets(line_pk=line_pk))

    @property
    def wallet_count(self) -> int:
        return len(self.shells)


def plan_mint(*, shells: Sequence[Shell], lines: Sequence[OrderLineLike], items: dict[int, Item]) -> MintPlan:
    """Lay out the minting of unminted live wallet shells (in the order given: the caller's
    line order, then position); no query.

    `items` maps each line's pk to its catalog item (with time slots, components and coupons
    prefetched, as catalog.selectors.items_by_code gives them).
    """
    plan = MintPlan(shells=list(shells))
    for line in lines:
        plan.contents[line.pk] = wallet_contents(line=line, item=items[line.pk])
    missing = {shell.line_pk for shell in shells} - plan.contents.keys()
    if missing:
        raise ValueError(f"wallet shells of lines {sorted(missing)} were not planned")
    stale = [shell.wallet.pk for shell in shells if shell.wallet.minted_at or shell.wallet.destroyed_at]
    if stale:
        raise ValueError(f"wallets {stale} are minted or destroyed already")
    return plan


def mint(plan: MintPlan, *, validity: str, now: dt.datetime | None = None) -> list[Wallet]:
    """Write the plan: give each shell its reference (the partner's external reference, else a
    new system one), a manifest token, its validity (pending or valid) and its assets. One
    UPDATE and one INSERT (per batch)."""
    if validity not in (WalletValidity.PENDING, WalletValidity.VALID):
        raise ValueError(f"a wallet is minted pending or valid, not {validity}")
    if not plan.shells:
        return []
    now = now or timezone.now()
    numbers: set[str] = set()
    assets: list[Asset] = []
    wallets = [shell.wallet for shell in plan.shells]
    for shell in plan.shells:
        wallet = shell.wallet
        wallet.wallet_reference_number = wallet.external_reference_number or new_wallet_reference()
        wallet.manifest_token = new_manifest_token()
        wallet.minted_at = now
        wallet.validity = validity
        for position, spec in enumerate(plan.contents[shell.line_pk]):
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
    _save_minted(wallets, now=now, validity=validity)
    Asset.objects.bulk_create(assets, batch_size=ASSET_INSERT_BATCH)
    return wallets


def _save_minted(wallets: list[Wallet], *, now: dt.datetime, validity: str) -> None:
    """Store the wallets' references, tokens, validity and minted_at (set on the instances by
    mint): one UPDATE per thousand wallets (channel_manager.kernel.bulk.update_rows)."""
    update_rows(wallets, ["wallet_reference_number", "manifest_token", "minted_at", "validity"])


def mint_wallets(
    *, shells: Sequence[Shell], lines: Sequence[OrderLineLike], items: dict[int, Item], validity: str
) -> list[Wallet]:
    """Plan and mint in one call (two statements). The caller reserves the capacity of the
    minted tickets (`capacity_claims`) in the same transaction; issuance uses `plan_mint`,
    reserves `plan.claims_for_line(...)` line by line, then calls `mint(plan, ...)`."""
    return mint(plan_mint(shells=shells, lines=lines, items=items), validity=validity)


# --------------------------------------------------------------------------------------------
# Validity
# --------------------------------------------------------------------------------------------


def validate_wallets(*, wallet_ids: WalletIds) -> int:
    """Pending wallets among `wallet_ids` become valid (their order was confirmed); one UPDATE.
    Void ones stay void. Returns how many changed."""
    return _wallets(wallet_ids).filter(validity=WalletValidity.PENDING).update(validity=WalletValidity.VALID)


# --------------------------------------------------------------------------------------------
# Destroying
# --------------------------------------------------------------------------------------------


def _require_atomic() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("wallets must be destroyed inside transaction.atomic()")


def destroy_wallets(*, wallet_ids: WalletIds, now: dt.datetime | None = None) -> list[CapacityClaim]:
    """Make the live wallets among `wallet_ids` void (one UPDATE) and return the capacity their
    minted tickets held, for the caller to release in the same transaction (three statements).

    Call it inside transaction.atomic() with the owning order's row locked (select_for_update),
    so that no issuance mints these wallets in between. Void wallets keep their row and token
    (their manifest URL answers 410) and free their external reference numbers. Their assets
    go into the gate's change feed.
    """
    _require_atomic()
    now = now or timezone.now()
    live = _wallets(wallet_ids).filter(destroyed_at__isnull=True)
    claims = minted_ticket_claims(live)
    # Into the gate's change feed, in this transaction, so offline devices refuse them too. Test
    # wallets stay out: their codes say "test" and are refused anyway, and housekeeping deletes
    # their assets (the feed then names no asset that is gone).
    record_voided(assets=Asset.objects.filter(wallet__in=live.filter(livemode=True)), at=now)
    live.update(validity=WalletValidity.VOID, destroyed_at=now)
    return claims


def destroy_wallets_and_release(*, wallet_ids: WalletIds, now: dt.datetime | None = None) -> list[CapacityClaim]:
    """destroy_wallets, then release the capacity it returns; same rules."""
    claims = destroy_wallets(wallet_ids=wallet_ids, now=now)
    if claims:
        release_capacity(claims=claims)
    return claims


def delete_wallets(*, wallet_ids: WalletIds) -> None:
    """Delete wallets with their assets (a deleted Draft or Error order leaves no trace: its
    manifest URLs answer 404). Destroy them first so their capacity is released. A fixed
    number of statements: the wallets' ids, then one DELETE per table that refers to them."""
    _require_atomic()
    _wallets(wallet_ids).delete()


__all__ = [
    "AssetPlan",
    "ComponentVisit",
    "MintPlan",
    "TicketRow",
    "HolderSnapshot",
    "Shell",
    "capacity_claims",
    "component_visits",
    "create_shells",
    "delete_wallets",
    "destroy_wallets",
    "destroy_wallets_and_release",
    "holder_name",
    "is_timed",
    "mint",
    "mint_wallets",
    "minted_ticket_claims",
    "plan_mint",
    "validate_wallets",
    "wallet_contents",
]


def update_holder(*, wallet_ids: WalletIds, snapshot: HolderSnapshot) -> int:
    """Write a new holder snapshot (name, language, country, references) on live wallets: the
    customer changed on a booking whose wallets stay. One UPDATE; returns how many."""
    return _wallets(wallet_ids).filter(destroyed_at__isnull=True).update(
        holder_name=snapshot.holder_name, holder_language=snapshot.holder_language,
        holder_country=snapshot.holder_country, sell_to_order_reference=snapshot.sell_to_order_reference,
        buy_from_order_reference=snapshot.buy_from_order_reference,
    )
