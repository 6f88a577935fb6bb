"""Admission: resolve a code, check it is valid at the venue when scanned, admit it once
(online, POST /gate/scans; offline uploads, POST /gate/scans/batch, where the earliest scan wins).

Exactly once is the database's promise, not this module's: the asset row is locked, its wallet
read afresh (a concurrent cancellation is seen), and redeemed_at is set by a conditional UPDATE
(WHERE redeemed_at IS NULL). Of two scans racing for one asset, one updates a row, the other
none. Every scan is logged, accepted or not. Each redemption also goes into the gate's change
feed (wallets.gate.changes) in the same transaction.

Only a redemption needs a transaction: the lock, the UPDATE, the change row, the order's first
use (wallets.signals) and the scan's log row commit together. Resolving a code only reads, so
it runs before (under READ COMMITTED each statement of a transaction would read what had
committed when it started all the same, and the redemption re-checks under the lock whatever
may have changed since); a refusal writes its log row alone, one statement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from catalog.selectors import cached_items_by_code, get_venue
from channel_manager.kernel.prepared import prepared_cursor
from wallets.gate import signing
from wallets.gate.changes import record_redeemed, redeemed_changes_sql
from wallets.models import Asset, AssetType, GateDevice, GateScan, ScanResult, Wallet, WalletValidity
from wallets.signals import redemption_recorded

# A timed ticket admits from this long before its visitTime until this long after it, unless
# its item configures its own window (Item.admit_before_minutes / admit_after_minutes).
ADMIT_BEFORE = dt.timedelta(minutes=60)
ADMIT_AFTER = dt.timedelta(minutes=60)
LOGGED_CODE_LENGTH = GateScan._meta.get_field("code").max_length

UNKNOWN_CODE = "unknown_code"
NOT_VALID_YET = "not_valid_yet"
VOID = "void"
WRONG_DATE = "wrong_date"
OUTSIDE_SLOT = "outside_slot"
ALREADY_REDEEMED = "already_redeemed"
NOT_ADMITTED_HERE = "not_admitted_here"
TEST_TICKET = "test_ticket"  # made with a test key (API.md, "Test mode"): never admits

# How far each refusal got through the checks: for a wallet reference, the ticket that came
# closest to admission names the reason (a used ticket says more than one for another gate).
_STAGE = {VOID: 0, NOT_ADMITTED_HERE: 1, WRONG_DATE: 2, NOT_VALID_YET: 3, OUTSIDE_SLOT: 3, ALREADY_REDEEMED: 4}
_STAGE[TEST_TICKET] = -1  # a test code says so only when no live wallet shares its reference


@dataclass(frozen=True)
class PreviousRedemption:
    at: dt.datetime
    device_id: str | None


@dataclass(frozen=True)
class ScanOutcome:
    reason: str | None  # None: accepted
    asset: Asset | None = None
    redeemed_at: dt.datetime | None = None
    previous: PreviousRedemption | None = None
    # Offline uploads: the later redemption this earlier scan took the asset from (a conflict).
    superseded: PreviousRedemption | None = None

    @property
    def result(self) -> str:
        return ScanResult.ACCEPTED if self.reason is None else ScanResult.REJECTED


def scan_code(*, device: GateDevice, code: str, scanned_at: dt.datetime | None = None) -> ScanOutcome:
    """Admit what `code` names, if it may be admitted by `device` at `scanned_at` (default now),
    and log the scan."""
    return _scan(device=device, code=code, at=scanned_at or timezone.now())


def upload_scans(*, device: GateDevice, scans: Sequence[tuple[str, dt.datetime]]) -> list[ScanOutcome]:
    """Scans a device made offline, as (code, scannedAt): each is checked at its own scannedAt,
    admitted and logged as an online scan would be, except that the earliest scannedAt wins:
    an asset redeemed by a later scan moves to this one, and that later scan becomes a
    conflict (superseded, logged as such). Outcomes come back in the order given.

    They are taken earliest first, so that within one upload the earliest scan of an asset
    wins outright; each redemption in a transaction of its own, locking one asset at a time
    (two devices uploading overlapping batches cannot deadlock)."""
    outcomes: list[ScanOutcome | None] = [None] * len(scans)
    for index in sorted(range(len(scans)), key=lambda i: scans[i][1]):
        code, at = scans[index]
        outcomes[index] = _scan(device=device, code=code, at=at, earliest_wins=True)
    return outcomes  # type: ignore[return-value]


def _scan(*, device: GateDevice, code: str, at: dt.datetime, earliest_wins: bool = False) -> ScanOutcome:
    """One scan, logged: an admission is logged in its redemption's transaction (_redeem), a
    refusal here."""
    outcome = _admit(device=device, code=code.strip(), at=at, earliest_wins=earliest_wins, logged_code=code)
    if outcome.reason is not None:
        _log(device=device, code=code, at=at, outcome=outcome)
    return outcome


def _log(*, device: GateDevice, code: str, at: dt.datetime, outcome: ScanOutcome) -> None:
    connection = connections[router.db_for_write(GateScan)]
    if connection.vendor == "postgresql" and outcome.superseded is None:
        # Every scan writes this row: SQL of our own (the ORM's INSERT cost more than the insert).
        with prepared_cursor(connection.alias) as cursor:
            cursor.execute(_statements(connection.alias).log, [
                device.pk, code[:LOGGED_CODE_LENGTH], at, timezone.now(), outcome.result, outcome.reason,
                outcome.asset.pk if outcome.asset is not None else None,
            ])
        return
    logged = GateScan.objects.create(
        device=device, code=code[:LOGGED_CODE_LENGTH], scanned_at=at, result=outcome.result,
        reason=outcome.reason, asset=outcome.asset,
    )
    if outcome.superseded is not None:
        GateScan.objects.filter(
            asset=outcome.asset, result=ScanResult.ACCEPTED, superseded_by__isnull=True
        ).exclude(pk=logged.pk).update(superseded_by=logged)


def _admit(
    *, device: GateDevice, code: str, at: dt.datetime, earliest_wins: bool = False, logged_code: str
) -> ScanOutcome:
    if not code:
        return ScanOutcome(UNKNOWN_CODE)
    if signing.looks_signed(code):
        # A QR payload: it names its asset if a listed key signed it; else it names nothing.
        claims = signing.verify(code)
        if claims is None:
            return ScanOutcome(UNKNOWN_CODE)
        code = claims["a"]
        if signing.is_test(claims):
            # A test code says so itself, also once housekeeping has removed its asset.
            asset = Asset.objects.select_related("wallet").filter(asset_number=code).first()
            return ScanOutcome(TEST_TICKET, asset=asset)
    connection = connections[router.db_for_read(Asset)]
    if connection.vendor == "postgresql":
        candidates = _candidates(connection.alias, code)
        if not candidates:
            return ScanOutcome(UNKNOWN_CODE)
        return _admit_first(device=device, candidates=candidates, at=at, earliest_wins=earliest_wins,
                            logged_code=logged_code)
    # Asset numbers use capitals and digits only: a hand-typed lower-case one still matches.
    asset = Asset.objects.select_related("wallet").filter(asset_number=code.upper()).first()
    if asset is not None:
        candidates = [asset]
    else:
        # A wallet reference: its tickets, in the wallet's asset order. External references are
        # unique per partner only, so one may name wallets of several partners.
        candidates = list(
            Asset.objects.select_related("wallet")
            .filter(Q(wallet__wallet_reference_number=code) | Q(wallet__external_reference_number=code),
                    asset_type=AssetType.TICKET)
            .order_by("wallet__destroyed_at", "wallet_id", "position", "id")
        )
        if not candidates:
            return ScanOutcome(UNKNOWN_CODE)
    return _admit_first(device=device, candidates=candidates, at=at, earliest_wins=earliest_wins,
                        logged_code=logged_code)


def _admit_first(
    *, device: GateDevice, candidates: Iterable[Asset], at: dt.datetime, earliest_wins: bool = False,
    logged_code: str,
) -> ScanOutcome:
    """Redeem the first candidate that passes every check; else the closest refusal."""
    if earliest_wins:
        # An unused ticket of the wallet first: moving another scan's redemption is for the
        # asset both scans really named, not for a sibling ticket that happened to be used.
        candidates = sorted(candidates, key=lambda asset: asset.redeemed_at is not None)
    best: ScanOutcome | None = None
    for asset in candidates:
        reason = refusal(device=device, asset=asset, wallet=asset.wallet, at=at, earliest_wins=earliest_wins)
        outcome = (
            _redeem(device=device, asset=asset, at=at, earliest_wins=earliest_wins, logged_code=logged_code)
            if reason is None else _refused(asset, reason)
        )
        if outcome.reason is None:
            return outcome
        if best is None or _STAGE[outcome.reason] > _STAGE[best.reason]:
            best = outcome
    assert best is not None
    return best


def refusal(
    *, device: GateDevice, asset: Asset, wallet: Wallet, at: dt.datetime, earliest_wins: bool = False
) -> str | None:
    """Why `device` may not admit `asset` at `at`, or None. Dates and times are the venue's."""
    if not wallet.livemode:
        return TEST_TICKET
    if wallet.validity == WalletValidity.VOID or wallet.destroyed_at is not None:
        return VOID
    if wallet.validity == WalletValidity.PENDING:
        return NOT_VALID_YET  # a Draft's wallet: not valid until the order is confirmed
    admitted = getattr(device, "admitted_item_ids", None)
    if admitted is None:
        admitted = frozenset(device.items.values_list("id", flat=True))
    if admitted and asset.item_id not in admitted:
        return NOT_ADMITTED_HERE
    time_reason = _outside_validity(asset, at)
    if time_reason:
        return time_reason
    if asset.redeemed_at is not None and not (earliest_wins and asset.redeemed_at >= at):
        return ALREADY_REDEEMED
    return None


def _outside_validity(asset: Asset, at: dt.datetime) -> str | None:
    tz = get_venue().tzinfo
    local = at.astimezone(tz)
    today = local.date()
    if asset.asset_type == AssetType.COUPON:
        last_day = asset.valid_until or asset.visit_date
        return None if asset.visit_date <= today <= last_day else WRONG_DATE
    if asset.visit_time is not None:
        # The window may start the evening before a visit just after midnight: compare instants.
        visit = dt.datetime.combine(asset.visit_date, asset.visit_time, tzinfo=tz)
        before, after = admission_window(asset)
        if visit - before <= local <= visit + after:
            return None
        if today != asset.visit_date:
            return WRONG_DATE
        return NOT_VALID_YET if local < visit - before else OUTSIDE_SLOT
    return None if today == asset.visit_date else WRONG_DATE


def admission_window(asset: Asset) -> tuple[dt.timedelta, dt.timedelta]:
    """How long before and after its visitTime a timed ticket admits: its item's window, from
    the catalog snapshot each process keeps (no query per scan), else an hour either side."""
    item = cached_items_by_code([asset.item_code]).get(asset.item_code)
    if item is None:
        return ADMIT_BEFORE, ADMIT_AFTER
    return dt.timedelta(minutes=item.admit_before_minutes), dt.timedelta(minutes=item.admit_after_minutes)


def _refused(asset: Asset, reason: str, *, reread: bool = False) -> ScanOutcome:
    previous = None
    if reason == ALREADY_REDEEMED:
        previous = _previous_redemption(asset, reread=reread)
    return ScanOutcome(reason, asset=asset, previous=previous)


def _previous_redemption(asset: Asset, *, reread: bool = False) -> PreviousRedemption:
    if not reread and hasattr(asset, "redeemed_by_device_id"):
        # Read with the asset (_candidates), in the same snapshot as the redeemed_at refused.
        at, device_id = asset.redeemed_at, asset.redeemed_by_device_id
        return PreviousRedemption(at=at, device_id=str(device_id) if device_id else None)
    at, device_id = Asset.objects.filter(pk=asset.pk).values_list("redeemed_at", "redeemed_by__device_id").get()
    return PreviousRedemption(at=at, device_id=str(device_id) if device_id else None)


def _redeem(
    *, device: GateDevice, asset: Asset, at: dt.datetime, earliest_wins: bool = False, logged_code: str
) -> ScanOutcome:
    """Admit `asset` once, in a transaction that also logs the scan if it admitted. The row lock
    orders this scan with a concurrent cancellation (which locks the same rows, see
    assets_redeemed); the conditional UPDATE is the guarantee.

    With `earliest_wins` (offline uploads) a redemption by a later scan moves to this one: the
    UPDATE's condition is "unused, or used later than `at`". The values read under the row lock
    only say whom the move displaced (the conflict reported) and whether it is the first use."""
    connection = connections[router.db_for_write(Asset)]
    with transaction.atomic(using=connection.alias):
        if connection.vendor == "postgresql" and not earliest_wins:
            outcome = _redeem_online(connection, device=device, asset=asset, at=at)
        else:
            outcome = _redeem_orm(device=device, asset=asset, at=at, earliest_wins=earliest_wins)
        if outcome.reason is None:
            _log(device=device, code=logged_code, at=at, outcome=outcome)
    return outcome


def _redeem_orm(*, device: GateDevice, asset: Asset, at: dt.datetime, earliest_wins: bool) -> ScanOutcome:
    before_at, before_device = (
        Asset.objects.select_for_update(of=("self",)).filter(pk=asset.pk)
        .values_list("redeemed_at", "redeemed_by__device_id").get()
    )
    validity, destroyed_at = Wallet.objects.filter(pk=asset.wallet_id).values_list("validity", "destroyed_at").get()
    if validity == WalletValidity.VOID or destroyed_at is not None:
        return ScanOutcome(VOID, asset=asset)
    if validity == WalletValidity.PENDING:
        return ScanOutcome(NOT_VALID_YET, asset=asset)
    unused = Q(redeemed_at__isnull=True)
    if earliest_wins:
        if before_at == at and before_device == device.device_id:
            # The same offline scan uploaded again (its answer was lost): as it was the first time.
            return ScanOutcome(None, asset=asset, redeemed_at=at)
        unused |= Q(redeemed_at__gt=at)
    updated = Asset.objects.filter(unused, pk=asset.pk).update(redeemed_at=at, redeemed_by=device)
    if updated == 0:
        return _refused(asset, ALREADY_REDEEMED, reread=True)
    asset.redeemed_at, asset.redeemed_by = at, device
    record_redeemed(asset=asset, at=at)
    if before_at is None:
        redemption_recorded.send(sender=Asset, wallet_ids=[asset.wallet_id], at=at)
        return ScanOutcome(None, asset=asset, redeemed_at=at)
    superseded = PreviousRedemption(at=before_at, device_id=str(before_device) if before_device else None)
    return ScanOutcome(None, asset=asset, redeemed_at=at, superseded=superseded)


def _redeem_online(connection, *, device: GateDevice, asset: Asset, at: dt.datetime) -> ScanOutcome:
    """_redeem for an online scan on PostgreSQL, in SQL of our own: the lock, then ONE conditional
    UPDATE that also requires the wallet to be valid and not destroyed, and writes the change
    row (record_redeemed's) in the same statement. That UPDATE runs after the lock was granted,
    so its snapshot sees a cancellation that held the lock before it (a cancellation locks
    these asset rows, assets_redeemed, before voiding the wallet); a condition in the locking
    SELECT itself would be judged on the wallet row it read before waiting. The reason is read
    only when the UPDATE changed nothing."""
    statements = _statements(connection.alias)
    with prepared_cursor(connection.alias) as cursor:
        cursor.execute(statements.lock, [asset.pk])
        before_at, before_device = cursor.fetchone()
        cursor.execute(statements.redeem, [at, device.pk, asset.pk, asset.wallet_id])
        updated = cursor.rowcount
        if updated == 0:
            cursor.execute(statements.wallet_state, [asset.wallet_id])
            validity, destroyed_at = cursor.fetchone()
    if updated == 0:
        if validity == WalletValidity.VOID or destroyed_at is not None:
            return ScanOutcome(VOID, asset=asset)
        if validity == WalletValidity.PENDING:
            return ScanOutcome(NOT_VALID_YET, asset=asset)
        # Used by a concurrent scan: under the lock, the values read name it.
        previous = PreviousRedemption(at=before_at, device_id=str(before_device) if before_device else None)
        return ScanOutcome(ALREADY_REDEEMED, asset=asset, previous=previous)
    asset.redeemed_at, asset.redeemed_by = at, device
    redemption_recorded.send(sender=Asset, wallet_ids=[asset.wallet_id], at=at)
    return ScanOutcome(None, asset=asset, redeemed_at=at)


# ---- the hot path's SQL (PostgreSQL) ---------------------------------------------------------------
# Every scan resolves a code, most redeem and all are logged: written once per process, as the
# device lookup is (wallets.gate.authentication). The ORM's compilation and model building cost
# several times the statements themselves (bench/README.md, phase f).

# The columns a scan reads, in the models' field order (Model.from_db takes them so).
_ASSET_READ = [f.attname for f in Asset._meta.concrete_fields if f.attname in {
    "id", "wallet_id", "asset_type", "asset_number", "item_id", "item_code", "name", "visit_date", "visit_time",
    "admits", "valid_until", "redeemed_at", "redeemed_by_id"}]
_WALLET_READ = [f.attname for f in Wallet._meta.concrete_fields if f.attname in {
    "id", "livemode", "validity", "destroyed_at"}]


@dataclass(frozen=True)
class _Statements:
    candidates: str
    lock: str
    redeem: str
    wallet_state: str
    log: str


@cache
def _statements(alias: str) -> _Statements:
    qn = connections[alias].ops.quote_name
    asset, wallet, device, scan = Asset._meta, Wallet._meta, GateDevice._meta, GateScan._meta

    def col(meta, name: str) -> str:
        return qn(meta.get_field(name).column)

    a = {name: f"a.{col(asset, name)}" for name in (*_ASSET_READ, "position")}
    w = {name: f"w.{col(wallet, name)}" for name in (*_WALLET_READ, "wallet_reference_number",
                                                      "external_reference_number")}
    select = ", ".join([
        *(f"{a[name]} AS a_{name}" for name in _ASSET_READ), *(f"{w[name]} AS w_{name}" for name in _WALLET_READ),
        f"d.{col(device, 'device_id')} AS redeemed_by_device", f"{a['position']} AS a_position",
    ])
    joins = (
        f"FROM {qn(asset.db_table)} a JOIN {qn(wallet.db_table)} w ON w.{col(wallet, 'id')} = {a['wallet_id']} "
        f"LEFT JOIN {qn(device.db_table)} d ON d.{col(device, 'id')} = {a['redeemed_by_id']}"
    )
    # An asset number (k = 0), else a wallet reference's tickets in the wallet's asset order.
    # External references are unique per partner only, so one may name wallets of several partners.
    candidates = (
        f"SELECT 0 AS k, {select} {joins} WHERE {a['asset_number']} = %s "
        f"UNION ALL SELECT 1, {select} {joins} "
        f"WHERE ({w['wallet_reference_number']} = %s OR {w['external_reference_number']} = %s) "
        f"AND {a['asset_type']} = %s "
        "ORDER BY k, w_destroyed_at, a_wallet_id, a_position, a_id"
    )
    lock = (
        f"SELECT {a['redeemed_at']}, d.{col(device, 'device_id')} FROM {qn(asset.db_table)} a "
        f"LEFT JOIN {qn(device.db_table)} d ON d.{col(device, 'id')} = {a['redeemed_by_id']} "
        f"WHERE {a['id']} = %s FOR UPDATE OF a"
    )
    # The redemption and its change row, one statement: the INSERT's row count is the UPDATE's.
    redeem = (
        f"WITH redeemed AS (UPDATE {qn(asset.db_table)} "
        f"SET {col(asset, 'redeemed_at')} = %s, {col(asset, 'redeemed_by')} = %s "
        f"WHERE {col(asset, 'id')} = %s AND {col(asset, 'redeemed_at')} IS NULL "
        f"AND EXISTS (SELECT 1 FROM {qn(wallet.db_table)} w WHERE {w['id']} = %s "
        f"AND {w['validity']} NOT IN ('{WalletValidity.VOID.value}', '{WalletValidity.PENDING.value}') "
        f"AND {w['destroyed_at']} IS NULL) "
        f"RETURNING {col(asset, 'asset_number')}, {col(asset, 'item')}, {col(asset, 'redeemed_at')}) "
        f"{redeemed_changes_sql('redeemed')}"
    )
    wallet_state = (
        f"SELECT {col(wallet, 'validity')}, {col(wallet, 'destroyed_at')} FROM {qn(wallet.db_table)} "
        f"WHERE {col(wallet, 'id')} = %s"
    )
    log_columns = ", ".join(col(scan, name) for name in (
        "device", "code", "scanned_at", "received_at", "result", "reason", "asset"))
    log = f"INSERT INTO {qn(scan.db_table)} ({log_columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    return _Statements(candidates=candidates, lock=lock, redeem=redeem, wallet_state=wallet_state, log=log)


def _candidates(alias: str, code: str) -> list[Asset]:
    """What `code` names, in one statement: its asset (with its wallet), else the tickets of the
    wallets whose reference it is. Each asset also carries `redeemed_by_device_id` (the device
    that used it), so that an "already redeemed" answer needs no further statement."""
    with prepared_cursor(alias) as cursor:
        # Asset numbers use capitals and digits only: a hand-typed lower-case one still matches.
        cursor.execute(_statements(alias).candidates, [code.upper(), code, code, AssetType.TICKET.value])
        rows = cursor.fetchall()
    if rows and rows[0][0] == 0:
        rows = rows[:1]
    na, nw = len(_ASSET_READ), len(_WALLET_READ)
    found = []
    for row in rows:
        asset = Asset.from_db(alias, _ASSET_READ, row[1:1 + na])
        Asset.wallet.field.set_cached_value(asset, Wallet.from_db(alias, _WALLET_READ, row[1 + na:1 + na + nw]))
        asset.redeemed_by_device_id = row[1 + na + nw]
        found.append(asset)
    return found


def assets_redeemed(*, wallet_ids: Iterable[int]) -> int:
    """How many assets of these wallets were used, locking them so that no scan admits one
    until the caller's transaction ends (a cancellation checks this before voiding them)."""
    locked = Asset.objects.select_for_update().filter(wallet_id__in=wallet_ids).order_by("pk")
    return sum(1 for redeemed_at in locked.values_list("redeemed_at", flat=True) if redeemed_at is not None)
