"""The gate's change feed: which assets were voided or redeemed, for devices that verify codes
offline (GET /gate/sync, API.md "Gate admission").

Why the feed cannot miss a change
---------------------------------
A change row (GateChange) is written in the very transaction that voids or redeems the asset,
so it exists exactly when the change has committed. A device reads the feed in order and keeps
a cursor: the position of the last change it was given. The danger is a change that becomes
visible *behind* a cursor already handed out. With a plain sequence (or timestamp) cursor that
happens whenever transactions commit out of order: T1 takes id 10, T2 takes id 11 and commits
first, a device reads up to 11, then T1 commits id 10 and the device never sees it.

So on PostgreSQL each row also carries its writing transaction's id (`txid`,
pg_current_xact_id()), the feed is ordered by (txid, id), and a read returns only rows whose
txid is below a bound taken from the reading statement's own snapshot: the lowest transaction
that snapshot does not see as ended, i.e. the least of its xmax (no transaction from there on
had ended) and its in-progress list (xip). Every transaction below the bound has ended
(committed and visible to that snapshot, or rolled back), and every transaction that has not
ended yet, or starts later, has a txid at or above it. Any row that can still appear therefore
sorts after everything this read returned, and a cursor naming the last row returned can never
be overtaken. The price is delay, never loss: a change waits until every transaction older than
it has ended. This is how PgQ reads its queues.

Snapshots span the whole cluster; an in-progress transaction that pg_stat_activity shows
working in *another* database cannot write our rows, so it is left out of the bound (one that
is not shown, e.g. another role's, or that ended meanwhile, is kept: only ever more cautious).

Elsewhere (SQLite, the embedded development database) one writer holds the database until it
commits, so ids commit in order; `txid` is 0 and the order is the id's.

Why pruning needs no resync
---------------------------
Housekeeping (channel_manager.ops.housekeeping.prune_gate_changes) deletes a change only when it
is older than GATE_CHANGES_RETENTION_DAYS *and* its asset can no longer be used (its last valid
day is past, or the asset is gone). Deleting by age alone would be unsafe: a device starting
afresh (no cursor) would never learn of a ticket for next summer that was cancelled two months
ago, and would admit it offline. As it is, the feed always holds every change of every code that
can still be shown, so a device that starts from no cursor is complete, and a cursor of any age
stays valid: what it may have missed concerns only codes that a device refuses by their signed
visit date (`d`) anyway. Positions are (txid, id), which deleting rows never reorders.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from channel_manager.kernel.cursors import MAX_ROW_ID, BadCursor, decode_cursor, encode_cursor
from wallets.models import Asset, GateChange, GateChangeKind

# A device that was offline for a day catches up in one call per this many changes.
SYNC_PAGE_SIZE = 10_000
SYNC_CURSOR = "gate-sync"
_NUMBER = re.compile(r"[0-9]{1,19}\Z")


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _current_txid_sql() -> str:
    """The writing transaction's id as a bigint (xid8 is epoch-extended: it never wraps)."""
    return "pg_current_xact_id()::text::bigint" if _on_postgresql() else "0"


# ---- writing (inside the transaction that voids or redeems) ----------------------------------


def record_redeemed(*, asset: Asset, at: dt.datetime) -> None:
    """The asset is redeemed at `at` (or its redemption moved to that earlier scan): one INSERT."""
    GateChange.objects.create(
        txid=RawSQL(_current_txid_sql(), []), kind=GateChangeKind.REDEEMED,
        asset_number=asset.asset_number, item_id=asset.item_id, at=at,
    )


def redeemed_changes_sql(source: str) -> str:
    """The INSERT of record_redeemed for every row of `source` (a CTE of a data-modifying
    statement returning asset_number, item_id and redeemed_at), to end a statement that redeems
    and records in one (the online scan's, PostgreSQL). No parameters."""
    qn = connection.ops.quote_name
    meta = GateChange._meta
    columns = ", ".join(qn(meta.get_field(name).column) for name in ("txid", "kind", "asset_number", "item", "at"))
    return (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) SELECT {_current_txid_sql()}, "
        f"'{GateChangeKind.REDEEMED.value}', asset_number, item_id, redeemed_at FROM {source}"
    )


def record_voided(*, assets: QuerySet[Asset], at: dt.datetime) -> None:
    """These assets are void from `at` on: one INSERT ... SELECT whatever their number. Call it
    before the wallets are marked void, while `assets` still selects them."""
    select_sql, params = assets.values_list("asset_number", "item_id").query.sql_with_params()
    qn = connection.ops.quote_name
    meta = GateChange._meta
    columns = ", ".join(qn(meta.get_field(name).column) for name in ("txid", "kind", "at", "asset_number", "item"))
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) "
        f"SELECT {_current_txid_sql()}, %s, %s, v.* FROM ({select_sql}) AS v"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [GateChangeKind.VOIDED, at, *params])


# ---- reading ------------------------------------------------------------------------------

# The lowest txid this statement's snapshot does not see as ended (see the module's docstring).
# backend_xid is 32 bits: the xid8 (epoch << 32 | xid) is compared modulo 2^32.
_ENDED_BELOW = """
SELECT LEAST(
    pg_snapshot_xmax(s.snap)::text::bigint,
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
     WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity AS a
        WHERE a.backend_xid = mod(x::text::bigint, 4294967296)::text::xid
          AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))))
FROM (SELECT pg_current_snapshot() AS snap) AS s
"""


@dataclass(frozen=True)
class SyncPosition:
    """Just after the change (txid, id); (0, 0) is the start of the feed."""

    txid: int = 0
    id: int = 0

    def encode(self) -> str:
        return encode_cursor(SYNC_CURSOR, self.txid, self.id)

    @classmethod
    def decode(cls, cursor: str) -> SyncPosition:
        """BadCursor for anything /gate/sync did not hand out."""
        parts = decode_cursor(cursor, SYNC_CURSOR, 2)
        if not all(_NUMBER.match(part) and int(part) <= MAX_ROW_ID for part in parts):
            raise BadCursor(cursor)
        return cls(txid=int(parts[0]), id=int(parts[1]))


@dataclass(frozen=True)
class SyncPage:
    voided: list[str]
    redeemed: list[tuple[str, dt.datetime]]
    next: SyncPosition
    count: int


def changes_since(
    *, position: SyncPosition, item_ids: Collection[int] = (), limit: int | None = None
) -> SyncPage:
    """Up to `limit` changes after `position`, in feed order, limited to `item_ids` when given
    (a device limited to some items); one query. The next position is the last change
    returned, or `position` itself when there was none."""
    limit = limit or SYNC_PAGE_SIZE
    rows = GateChange.objects.filter(
        Q(txid__gt=position.txid) | Q(txid=position.txid, id__gt=position.id), txid__gte=position.txid
    )
    if _on_postgresql():
        # Only transactions that have ended (see the module's docstring).
        rows = rows.filter(txid__lt=RawSQL(_ENDED_BELOW, []))
    if item_ids:
        rows = rows.filter(item_id__in=list(item_ids))
    page = list(rows.order_by("txid", "id").values_list("txid", "id", "kind", "asset_number", "at")[:limit])
    voided = [number for _, _, kind, number, _ in page if kind == GateChangeKind.VOIDED]
    redeemed = [(number, at) for _, _, kind, number, at in page if kind == GateChangeKind.REDEEMED]
    last = SyncPosition(txid=page[-1][0], id=page[-1][1]) if page else position
    return SyncPage(voided=voided, redeemed=redeemed, next=last, count=len(page))


# ---- pruning ------------------------------------------------------------------------------


def prunable_changes(*, before: dt.datetime, last_valid_day_before: dt.date) -> QuerySet[GateChange]:
    """Changes made before `before` whose asset can no longer be used: its last valid day (a
    ticket's visitDate, a coupon's validUntil) is before `last_valid_day_before`, or the asset is
    gone (a test asset housekeeping removed). See "Why pruning needs no resync" above."""
    usable = Asset.objects.filter(asset_number=OuterRef("asset_number")).filter(
        Q(visit_date__gte=last_valid_day_before) | Q(valid_until__gte=last_valid_day_before)
    )
    return GateChange.objects.filter(~Exists(usable), at__lt=before)
