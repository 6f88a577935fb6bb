"""`make faults`: fault drills against the real processes (gunicorn, qcluster, PostgreSQL) on a
throwaway database. Each drill says what it did and what it found; the run exits non-zero if any
invariant broke.

    bash .ci/with-postgres .venv/bin/python -m bench.faults \
        [--only kill,pgrestart,races,capacity,webhooks,isolation,holds]

Drills:

1. kill      kill -9 the whole qcluster 3 times while it issues 300 orders, restarting it each time.
2. pgrestart restart PostgreSQL under createOrder load: no 500s, clean 503 problem+json, no
             half-written order, everything accepted settles.
3. races     50 concurrent identical creates (one 202, the rest duplicate_order); 50 concurrent
             replaces, 50 concurrent deletes, and 25+25 mixed, each on one Draft order.
4. capacity  1,000 concurrent single-ticket orders on a slot of capacity 300.
5. webhooks  the receiver is down while orders settle, then flaky, then up: every event is
             delivered, none twice after a 2xx, every signature valid.
6. isolation partner B's endpoint accepts connections and never answers, partner C's drips one
             byte a second; both settle orders. Partner A's submit-to-settled p99 stays within
             2 x its p99 on the quiet system (measured first) + 0.5 s, and no A order waits more
             than ISOLATION_MAX_WAIT seconds.
7. holds     200 Draft holds on one slot end over 10 s while 300 paid orders for that slot arrive,
             40 partners confirm right at the end of their hold, and two expiry runs work at once:
             each hold is confirmed in time (200) or expired once (409 after), capacity exact.

Invariants checked after the drills that issue (`check_orders`): every order settled, once per
submission (one Draft/Issued/Error history row after each Submitted, and one event each); live
wallets are exactly the shells of the order's lines, minted unless the order is in Error, each
holding exactly its planned assets; asset numbers unique; and for every (item, date, slot)
Capacity.sold equals the admissions of the live ticket assets.

This process sets itself up as a Django process (settings bench.faults_settings, with short
Q_TIMEOUT/Q_RETRY/ISSUANCE_STUCK_SECONDS) to run the sweeper, the webhook sender and the checks;
the web server and the qclusters (issuance, and webhooks: Q_CLUSTER_NAME=webhooks) are child
processes started as production starts them.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import hashlib
import hmac
import http.server
import itertools
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable

from bench.common import (
    CATALOG,
    IN_FLIGHT,
    SETTLED,
    Api,
    Child,
    Reply,
    app_env,
    free_port,
    log,
    percentile,
    require_env,
    restart_postgres,
    sale_dates,
    six_wallet_order,
    start_gunicorn,
    start_qcluster,
    start_webhook_qcluster,
)

FAST = {
    "DJANGO_SETTINGS_MODULE": "bench.faults_settings",
    "Q_TIMEOUT": "10",  # a task running longer is killed ...
    "Q_RETRY": "12",  # ... and one unacknowledged this long (its worker died) is handed out again
    "Q_WORKERS": "2",
    # Short, so that orders of a killed worker are picked up again quickly; not shorter, since
    # the sweeper also re-enqueues Scheduled orders that merely wait in a long queue.
    "ISSUANCE_STUCK_SECONDS": "8",
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "Q_WEBHOOK_TIMEOUT": "30",  # the webhook cluster's own: a task drains for WEBHOOK_TASK_BUDGET_SECONDS
    "Q_WEBHOOK_RETRY": "40",
}
EXPIRED = "hold expired"  # check_orders: a history step of the hold expiry (actor HOLD_EXPIRY_ACTOR)
CONFIRMED = "confirmed"  # check_orders: a history step of confirmOrder
HOLD_EXPIRY_ACTOR = "hold-expiry"  # channel_manager.orders.services.HOLD_EXPIRY_ACTOR
DRILL_ITEM = "DRILL-SLOT"
DRILL_SLOT = "10:00"
DRILL_CAPACITY = 300
HOLD_ARRIVALS = 300  # paid orders arriving while the holds drill's 200 Drafts expire
PARTNER = "drill"
HOOK_PARTNER = "hooks"


class DrillFailed(AssertionError):
    pass


class Context:
    """What the drills share: the web server, keys, dates, and the qcluster (restartable)."""

    def __init__(self, port: int, keys: dict[str, str], env: dict[str, str]) -> None:
        self.gunicorn: Child | None = None
        self.port = port
        self.keys = keys
        self.env = env
        self.dates = sale_dates()
        self.date_cursor = itertools.count()
        self.qcluster: Child | None = None
        self.webhook_qcluster: Child | None = None

    def api(self, partner: str = PARTNER) -> Api:
        return Api(self.port, self.keys[partner], timeout=60)

    def next_date(self) -> str:
        return self.dates[next(self.date_cursor) % len(self.dates)]

    def start_qcluster(self) -> Child:
        """Both clusters, as production runs them: issuance, and webhook delivery (its own queue)."""
        self.stop_qcluster()
        self.qcluster = start_qcluster(self.env)
        self.webhook_qcluster = start_webhook_qcluster(self.env)
        return self.qcluster

    def stop_qcluster(self) -> None:
        for child in (self.qcluster, self.webhook_qcluster):
            if child is not None:
                child.cleanup()
        self.qcluster = self.webhook_qcluster = None

    def dead_cluster(self) -> Child | None:
        """A qcluster of this drill that died (the drill fails for it)."""
        return next((c for c in (self.qcluster, self.webhook_qcluster) if c is not None and not c.alive()), None)


# ---- Django in this process ----------------------------------------------------------------------


def setup_django() -> None:
    os.environ.update(FAST)
    os.environ.setdefault("SECRET_KEY", app_env()["SECRET_KEY"])
    os.environ.pop("CM_DEV", None)
    os.environ["LOG_LEVEL"] = "ERROR"  # this process's own logging; the children log warnings
    import logging

    import django

    django.setup()
    logging.getLogger("django-q").setLevel(logging.ERROR)


def purge_queue() -> int:
    """Between drills, when no order is in flight: drop the queued issuance tasks left over (the
    sweeper's duplicates of orders that have settled since; each would be a no-op), so that each
    drill starts with an idle queue."""
    from django_q.models import OrmQ

    from channel_manager.orders.models import Order

    if Order.objects.filter(status__in=IN_FLIGHT).exists():
        return 0
    return OrmQ.objects.all().delete()[0]


def reconnect() -> None:
    """After PostgreSQL went away: drop this thread's dead connection."""
    from django.db import connections

    for conn in connections.all():
        conn.close()


# ---- helpers ---------------------------------------------------------------------------------------


def parallel(count: int, job: Callable[[int], Reply], threads: int | None = None, barrier: bool = False) -> list:
    """Run job(i) for i in range(count) on `threads` threads (default: one per job), with a
    barrier so that they start together when asked; results in order."""
    results: list = [None] * count
    threads = threads or count
    gate = threading.Barrier(min(threads, count)) if barrier else None
    counter = itertools.count()

    def worker() -> None:
        if gate is not None:
            gate.wait()
        while True:
            i = next(counter)
            if i >= count:
                return
            results[i] = job(i)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(min(threads, count))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def order_statuses(prefix: str) -> collections.Counter:
    from channel_manager.orders.models import Order

    return collections.Counter(
        Order.objects.filter(sell_to_order_reference__startswith=prefix).values_list("status", flat=True)
    )


def wait_settled(ctx: Context, prefix: str, timeout: float, sweep_every: float | None = None) -> float:
    """Wait until no order of the prefix is in flight (restarting a qcluster that died, and
    failing the drill for it). With sweep_every, run the sweeper from here too."""
    from channel_manager.orders.models import Order
    from channel_manager.orders.tasks import sweep_stuck_orders

    started = time.monotonic()
    last_sweep = 0.0
    while True:
        left = Order.objects.filter(sell_to_order_reference__startswith=prefix, status__in=IN_FLIGHT).count()
        if not left:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise DrillFailed(f"{left} orders still in flight after {timeout:.0f} s: {dict(order_statuses(prefix))}")
        dead = ctx.dead_cluster()
        if dead is not None:
            raise DrillFailed(f"the {dead.name} died (status {dead.process.returncode}):\n{dead.output(1500)}")
        if sweep_every is not None and time.monotonic() - last_sweep >= sweep_every:
            last_sweep = time.monotonic()
            sweep_stuck_orders()
        time.sleep(0.25)


def expected_assets_per_wallet(item) -> int:
    from catalog.models import ItemType

    if item.item_type == ItemType.PACKAGE:
        return item.components.count() + item.coupons.count()
    return 1


def check_orders(prefix: str) -> list[str]:
    """The invariants for the orders whose reference starts with prefix (see the module doc)."""
    from django.db.models import Count, F

    from catalog.models import Item
    from channel_manager.orders.models import Order, OrderStatus, OrderStatusChange
    from channel_manager.orders.services import wallets_issued_by
    from notifications.models import Event
    from wallets.models import Asset, Wallet

    problems: list[str] = []
    orders = list(Order.objects.filter(sell_to_order_reference__startswith=prefix).prefetch_related("lines"))
    per_item: dict[int, int] = {}
    items = {item.pk: item for item in Item.objects.all()}
    history: dict[int, list[str]] = collections.defaultdict(list)
    for order_pk, from_status, to_status, actor in (
        OrderStatusChange.objects.filter(order__in=orders).order_by("order_id", "at", "id")
        .values_list("order_id", "from_status", "to_status", "actor")
    ):
        # A Draft whose hold expired moves on to Error once more, announced too: not a settle.
        # Nor is a confirm (Draft -> Issued), which no event announces.
        if actor == HOLD_EXPIRY_ACTOR:
            to_status = EXPIRED
        elif (from_status, to_status) == (OrderStatus.DRAFT, OrderStatus.ISSUED):
            to_status = CONFIRMED
        history[order_pk].append(to_status)
    events = collections.Counter(
        Event.objects.filter(subject_id__in=[str(o.order_id) for o in orders]).values_list("subject_id", flat=True)
    )
    live = collections.defaultdict(list)
    for wallet in (
        Wallet.objects.filter(order_link__order__in=orders, destroyed_at__isnull=True)
        .annotate(n=Count("assets"), order_pk=F("order_link__order_id"), line_pk=F("order_link__line_id"))
    ):
        live[wallet.order_pk].append(wallet)
    for order in orders:
        label = f"{order.sell_to_order_reference} ({order.status})"
        if order.status in IN_FLIGHT:
            problems.append(f"{label}: still in flight")
            continue
        # One settle after each submission; at most one hold expiry, right after a Draft.
        runs, settles = [], 0
        steps = history[order.pk]
        for i, status in enumerate(steps):
            if status == OrderStatus.SUBMITTED:
                if runs or settles:
                    runs.append(settles)
                settles = 0
            elif status in SETTLED:
                settles += 1
            elif status == EXPIRED and (i == 0 or steps[i - 1] != OrderStatus.DRAFT):
                problems.append(f"{label}: a hold expiry that does not follow a Draft (history {steps})")
        runs.append(settles)
        if any(n != 1 for n in runs):
            problems.append(f"{label}: settles per submission {runs} (history {steps})")
        submissions, expiries = len(runs), steps.count(EXPIRED)
        if events[str(order.order_id)] != submissions + expiries:
            problems.append(f"{label}: {events[str(order.order_id)]} events for {submissions} submissions "
                            f"and {expiries} hold expiries")
        if steps and steps[-1] == EXPIRED:
            if order.status != OrderStatus.ERROR or not (order.status_message or "").startswith("hold expired"):
                problems.append(f"{label}: its hold expired, yet it is {order.status}: {order.status_message}")
            if live[order.pk]:
                problems.append(f"{label}: {len(live[order.pk])} live wallets after its hold expired")
            continue
        if order.status == OrderStatus.CANCELLED:
            if live[order.pk]:
                problems.append(f"{label}: {len(live[order.pk])} live wallets on a cancelled order")
            continue
        # Wallets: exactly the shells of the current lines.
        by_line = collections.defaultdict(list)
        for wallet in live[order.pk]:
            by_line[wallet.line_pk].append(wallet)
        if set(by_line) - {line.pk for line in order.lines.all()}:
            problems.append(f"{label}: live wallets of lines that are gone")
        for line in order.lines.all():
            wallets = by_line.get(line.pk, [])
            expected = wallets_issued_by(line.item_type, line.quantity)
            positions = sorted(w.position for w in wallets)
            if positions != list(range(expected)):
                problems.append(f"{label} line {line.line_number}: wallet positions {positions}, expected {expected}")
            per_wallet = per_item.setdefault(line.item_id, expected_assets_per_wallet(items[line.item_id]))
            for wallet in wallets:
                if order.status == OrderStatus.ERROR:
                    if wallet.n or wallet.minted_at:
                        problems.append(f"{label}: wallet {wallet.pk} minted/holding {wallet.n} assets in Error")
                elif wallet.n != per_wallet or wallet.minted_at is None:
                    problems.append(f"{label}: wallet {wallet.pk} holds {wallet.n} assets (expected {per_wallet}), "
                                    f"minted_at {wallet.minted_at}")
    duplicates = (
        Asset.objects.values("asset_number").annotate(n=Count("id")).filter(n__gt=1).values_list("asset_number", "n")
    )
    problems += [f"asset number {number} appears {n} times" for number, n in duplicates]
    problems += check_capacity()
    return problems


def check_capacity() -> list[str]:
    """Capacity.sold == the admissions of the live ticket assets, per (item, date, slot), both ways."""
    from django.db.models import Sum

    from catalog.models import Capacity
    from wallets.models import Asset

    admitted = {
        (row["item_id"], row["visit_date"], row["visit_time"]): row["n"]
        for row in Asset.objects.filter(asset_type="ticket", wallet__destroyed_at__isnull=True)
        .values("item_id", "visit_date", "visit_time").annotate(n=Sum("admits"))
    }
    problems = []
    seen = set()
    for row in Capacity.objects.all():
        key = (row.item_id, row.visit_date, row.visit_time)
        seen.add(key)
        if row.sold != admitted.get(key, 0):
            problems.append(f"capacity {row}: sold {row.sold}, live tickets admit {admitted.get(key, 0)}")
        if row.capacity is not None and row.sold > row.capacity:
            problems.append(f"capacity {row}: oversold")
    for key, n in admitted.items():
        if key not in seen and n:
            problems.append(f"live tickets admit {n} on {key} without a capacity row")
    return problems


def last_traceback(child: Child | None, limit: int = 4000) -> str:
    """The last Python traceback in a child's log (a 500's cause), indented."""
    if child is None:
        return ""
    text = child.output(200_000)
    start = text.rfind("Traceback (most recent call last)")
    if start < 0:
        return ""
    block = text[start:start + limit].splitlines()
    end = next((i for i, line in enumerate(block[1:], 1) if line and not line.startswith((" ", "Traceback", "\t"))
                and ":" in line and not line.startswith("During")), len(block) - 1)
    return "\n".join("      " + line for line in block[: end + 1])


def fail_if(problems: list[str], what: str) -> None:
    if problems:
        shown = "\n    ".join(problems[:15])
        more = f"\n    ... and {len(problems) - 15} more" if len(problems) > 15 else ""
        raise DrillFailed(f"{what}: {len(problems)} problems\n    {shown}{more}")


# ---- 1. kill -9 the qcluster ---------------------------------------------------------------------


def drill_kill(ctx: Context) -> str:
    prefix, total, kills = "KILL-", 300, 3
    sellout = ctx.next_date()  # a third of the orders compete for 200 show places: some settle in Error

    def body(i: int) -> dict:
        if i % 3 == 0:
            return six_wallet_order(PARTNER, f"{prefix}{i}", sellout, "19:30")
        return six_wallet_order(PARTNER, f"{prefix}{i}", ctx.next_date(), "21:00", payment=None if i % 3 == 1 else "P")

    log(f"   submitting {total} orders (8 threads) with the qcluster running; kill -9 it {kills} times")
    ctx.start_qcluster()
    replies: list = [None] * total
    done = threading.Event()

    def submit() -> None:
        local = threading.local()

        def job(i: int) -> Reply:
            if not hasattr(local, "api"):
                local.api = ctx.api()
            return local.api.request("POST", "/channelManager", body(i))

        replies[:] = parallel(total, job, threads=8)
        done.set()

    submitter = threading.Thread(target=submit, daemon=True)
    submitter.start()
    at_kill = []
    for n in range(kills):
        deadline = time.monotonic() + 60
        target = 5 + 40 * n
        while sum(order_statuses(prefix)[s] for s in SETTLED) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        ctx.qcluster.kill9()
        counts = order_statuses(prefix)
        at_kill.append({s: counts[s] for s in ("Submitted", "Scheduled", "Processing", "Draft", "Issued", "Error")})
        log(f"   kill -9 #{n + 1}: {at_kill[-1]}")
        time.sleep(1.0)
        ctx.start_qcluster()
    submitter.join(timeout=300)
    statuses = collections.Counter(r.status for r in replies if r is not None)
    if statuses != {202: total}:
        raise DrillFailed(f"createOrder answers {dict(statuses)}, expected {total} x 202")
    in_flight_at_kills = sum(a["Processing"] + a["Scheduled"] + a["Submitted"] for a in at_kill)
    took = wait_settled(ctx, prefix, timeout=180, sweep_every=2.0)
    fail_if(check_orders(prefix), "after the kills")
    final = order_statuses(prefix)
    if in_flight_at_kills == 0:
        raise DrillFailed("no order was in flight at any kill: the drill proved nothing")
    return (f"{total} accepted; {in_flight_at_kills} in flight across the {kills} kills; all settled "
            f"{took:.1f} s after the last restart ({dict(final)}); each exactly once, wallets, assets and "
            "capacity exact")


# ---- 2. PostgreSQL restart under load ------------------------------------------------------------


def drill_pgrestart(ctx: Context) -> str:
    from channel_manager.orders.models import Order, OrderLine
    from channel_manager.orders.services import wallets_issued_by
    from wallets.models import Wallet

    prefix, seconds, restart_at = "PGR-", 10.0, 3.0
    ctx.start_qcluster()
    counter = itertools.count()
    replies: list[tuple[float, str, Reply]] = []
    lock = threading.Lock()
    start = time.monotonic()

    def load() -> None:
        api = ctx.api()
        while time.monotonic() - start < seconds:
            ref = f"{prefix}{next(counter)}"
            reply = api.request("POST", "/channelManager", six_wallet_order(PARTNER, ref, ctx.next_date(), "19:30"))
            with lock:
                replies.append((time.monotonic() - start, ref, reply))
            if reply.status == 0:
                time.sleep(0.05)
        api.close()

    pool = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in pool:
        t.start()
    time.sleep(restart_at)
    restart_began = time.monotonic() - start
    took = restart_postgres()
    restart_ended = time.monotonic() - start
    log(f"   PostgreSQL restarted at t={restart_began:.1f} s under load (took {took:.1f} s)")
    for t in pool:
        t.join()
    reconnect()

    statuses = collections.Counter(r.status for _, _, r in replies)
    log(f"   {len(replies)} createOrder requests: {dict(statuses)}")
    problems = []
    for at, ref, r in replies:
        if r.status >= 500 and (r.status != 503 or r.content_type != "application/problem+json"
                                or r.code != "service_unavailable"):
            problems.append(f"{ref} at t={at:.1f}s: {r.status} {r.content_type} {r.body[:200]!r}")
        if r.status not in (0, 202, 503):
            problems.append(f"{ref} at t={at:.1f}s: unexpected {r.status} {r.body[:200]!r}")
        if r.status == 0 and not (restart_began - 1 <= at <= restart_ended + 10):
            problems.append(f"{ref} at t={at:.1f}s: no answer ({r.error}) outside the restart")
    fail_if(problems, "answers during the restart")

    accepted = {ref for _, ref, r in replies if r.status == 202}
    rows = dict(Order.objects.filter(sell_to_order_reference__startswith=prefix)
                .values_list("sell_to_order_reference", "pk"))
    missing = accepted - set(rows)
    if missing:
        raise DrillFailed(f"{len(missing)} orders answered 202 but are not in the database: {sorted(missing)[:5]}")
    failed_refs = {ref for _, ref, r in replies if r.status != 202}
    committed_anyway = [(ref, r.status, r.code or r.error[:60], round(at - restart_began, 1))
                        for at, ref, r in replies if ref in failed_refs & set(rows)]
    # No half-written order: every order row has its lines and all its wallet shells.
    lines = collections.defaultdict(list)
    for line in OrderLine.objects.filter(order_id__in=rows.values()):
        lines[line.order_id].append(line)
    shells = collections.Counter(
        Wallet.objects.filter(order_link__order_id__in=rows.values()).values_list("order_link__order_id", flat=True)
    )

    def complete(pk: int) -> bool:
        expected = sum(wallets_issued_by(ln.item_type, ln.quantity) for ln in lines[pk])
        return len(lines[pk]) == 3 and shells[pk] == expected

    half = [ref for ref, pk in rows.items() if not complete(pk)]
    fail_if([f"{ref}: half-written ({len(lines[rows[ref]])} lines, {shells[rows[ref]]} wallets)" for ref in half],
            "order rows")
    if ctx.qcluster is not None and not ctx.qcluster.alive():
        raise DrillFailed(f"the qcluster died with the database restart (status {ctx.qcluster.process.returncode}):\n"
                          f"{ctx.qcluster.output(1500)}")
    settle = wait_settled(ctx, prefix, timeout=150, sweep_every=2.0)
    fail_if(check_orders(prefix), "after the restart")
    note = ""
    if committed_anyway:
        note = (f"; NOTE {len(committed_anyway)} requests answered 503/no answer although their order was committed "
                f"(a retry gets duplicate_order with its orderId) [(ref, status, code, seconds after the restart "
                f"began)]: {committed_anyway[:5]}")
    return (f"{len(replies)} requests: {dict(statuses)}; no 500, every 5xx a 503 problem+json; "
            f"{len(rows)} order rows all complete; {len(accepted)} accepted all settled once "
            f"({settle:.1f} s after the load){note}")


# ---- 3. races ------------------------------------------------------------------------------------


def wait_status(order_id: str, statuses: Iterable[str], timeout: float = 60) -> str:
    from channel_manager.orders.models import Order

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Order.objects.filter(order_id=order_id).values_list("status", flat=True).first()
        if status in statuses:
            return status
        time.sleep(0.1)
    raise DrillFailed(f"order {order_id} did not reach {list(statuses)} within {timeout:.0f} s (it is {status})")


def create_draft(ctx: Context, ref: str) -> str:
    api = ctx.api()
    body = six_wallet_order(PARTNER, ref, ctx.next_date(), "19:30", payment=None)
    reply = api.request("POST", "/channelManager", body)
    api.close()
    if reply.status != 202:
        raise DrillFailed(f"createOrder {ref}: {reply.status} {reply.body[:200]!r}")
    order_id = reply.json()["orderId"]
    wait_status(order_id, ["Draft"], timeout=120)
    return order_id


def storm(ctx: Context, n: int, request: Callable[[Api, int], Reply]) -> list[Reply]:
    def job(i: int) -> Reply:
        api = ctx.api()
        try:
            return request(api, i)
        finally:
            api.close()

    return parallel(n, job, barrier=True)


def replace_body(ref: str, i: int, day: str) -> dict:
    return {"partnerId": PARTNER, "sellToOrderReference": ref,
            "items": [{"itemId": "DAY-ADULT", "quantity": 1 + i % 4, "visitDate": day},
                      {"itemId": "PARK-AND-SHOW", "quantity": 1 + i % 2, "visitDate": day, "visitTime": "21:00"}]}


def race_creates(ctx: Context) -> str:
    day = ctx.next_date()
    replies = storm(ctx, 50, lambda api, i: api.request(
        "POST", "/channelManager", six_wallet_order(PARTNER, "RACE-SAME", day, "19:30")))
    outcome = collections.Counter((r.status, r.code) for r in replies)
    ids = {r.json().get("orderId") for r in replies if r.status in (202, 400)}
    if outcome != {(202, None): 1, (400, "duplicate_order"): 49} or len(ids) != 1:
        raise DrillFailed(f"50 identical creates: {dict(outcome)}, orderIds {ids}")
    return "50 identical creates: 1 x 202, 49 x 400 duplicate_order naming the same orderId"


def race_replaces(ctx: Context) -> str:
    from channel_manager.orders.models import OrderStatusChange

    ref = "RACE-REPLACE"
    order_id = create_draft(ctx, ref)
    day = ctx.next_date()
    path = f"/channelManager/{order_id}"
    replies = storm(ctx, 50, lambda api, i: api.request("PUT", path, replace_body(ref, i, day)))
    outcome = collections.Counter(r.status for r in replies)
    if set(outcome) - {202, 409} or not outcome[202]:
        bad = [(r.status, r.body[:200]) for r in replies if r.status not in (202, 409)][:3]
        raise DrillFailed(f"50 replaces: {dict(outcome)} {bad}")
    wait_settled(ctx, ref, timeout=90)
    replaced = OrderStatusChange.objects.filter(
        order__order_id=order_id, to_status="Submitted", message="replaced"
    ).count()
    if replaced != outcome[202]:
        raise DrillFailed(f"50 replaces: {outcome[202]} answered 202 but the history shows {replaced} replaces")
    fail_if(check_orders(ref), "50 replaces")
    return f"50 replaces: {dict(outcome)}; each accepted replace settled exactly once, wallets exact"


def race_deletes(ctx: Context) -> str:
    from channel_manager.orders.models import Order

    ref = "RACE-DELETE"
    order_id = create_draft(ctx, ref)
    replies = storm(ctx, 50, lambda api, i: api.request("DELETE", f"/channelManager/{order_id}"))
    outcome = collections.Counter(r.status for r in replies)
    problems = []
    if outcome[204] != 1 or set(outcome) - {204, 404, 409}:
        bad = [(r.status, r.body[:120]) for r in replies if r.status not in (204, 404, 409)][:1]
        problems.append(f"answers {dict(outcome)}, expected one 204 and 404 (or 409) for the rest {bad}")
    if Order.objects.filter(order_id=order_id).exists():
        problems.append("the order is still there")
    problems += check_capacity()
    fail_if(problems, "50 deletes")
    return f"50 deletes: {dict(outcome)}; order gone, its capacity released"


def race_mixed(ctx: Context) -> str:
    from channel_manager.orders.models import Order

    ref = "RACE-MIXED"
    order_id = create_draft(ctx, ref)
    day = ctx.next_date()

    def mixed(api: Api, i: int) -> Reply:
        if i % 2:
            return api.request("DELETE", f"/channelManager/{order_id}")
        return api.request("PUT", f"/channelManager/{order_id}", replace_body(ref, i, day))

    replies = storm(ctx, 50, mixed)
    outcome = collections.Counter(f"{('PUT', 'DELETE')[i % 2]} {r.status}" for i, r in enumerate(replies))
    allowed = {"PUT 202", "PUT 409", "PUT 404", "DELETE 204", "DELETE 409", "DELETE 404"}
    exists = Order.objects.filter(order_id=order_id).exists()
    problems = []
    if set(outcome) - allowed or outcome["DELETE 204"] > 1:
        bad = [(r.status, r.body[:120]) for r in replies if r.status >= 500][:1]
        problems.append(f"answers {dict(sorted(outcome.items()))} {bad}")
    if exists == bool(outcome["DELETE 204"]):
        problems.append(f"{outcome['DELETE 204']} x 204 but the order exists={exists}")
    if exists:
        wait_settled(ctx, ref, timeout=90)
        problems += check_orders(ref)
    else:
        problems += check_capacity()
    fail_if(problems, "25 replaces + 25 deletes")
    return (f"25 replaces + 25 deletes: {dict(sorted(outcome.items()))}; "
            f"{'settled once per accepted replace' if exists else 'gone'}, consistent")


def drill_races(ctx: Context) -> str:
    """Each burst is judged on its own; the drill fails if any did."""
    ctx.start_qcluster()
    found, failed = [], []
    for race in (race_creates, race_replaces, race_deletes, race_mixed):
        try:
            found.append(race(ctx))
        except DrillFailed as exc:
            failed.append(str(exc))
            found.append(f"FAILED {exc}")
        log(f"   {found[-1]}")
    if failed:
        raise DrillFailed(" | ".join(failed))
    return "; ".join(found)


# ---- 4. capacity ---------------------------------------------------------------------------------


def drill_capacity(ctx: Context) -> str:
    from catalog.models import Capacity

    prefix, total = "CAP-", 1000
    day = ctx.dates[len(ctx.dates) // 2]
    ctx.start_qcluster()
    local = threading.local()

    def job(i: int) -> Reply:
        if not hasattr(local, "api"):
            local.api = ctx.api()
        body = {"partnerId": PARTNER, "sellToOrderReference": f"{prefix}{i}", "paymentReference": "P",
                "items": [{"itemId": DRILL_ITEM, "quantity": 1, "visitDate": day, "visitTime": DRILL_SLOT}]}
        return local.api.request("POST", "/channelManager", body)

    started = time.monotonic()
    replies = parallel(total, job, threads=16, barrier=True)
    intake = time.monotonic() - started
    statuses = collections.Counter(r.status for r in replies)
    if statuses != {202: total}:
        raise DrillFailed(f"createOrder answers {dict(statuses)}")
    log(f"   {total} orders accepted in {intake:.1f} s; waiting for issuance")
    took = wait_settled(ctx, prefix, timeout=240)
    final = order_statuses(prefix)
    row = Capacity.objects.get(item__item_id=DRILL_ITEM, visit_date=day)
    if final != {"Issued": DRILL_CAPACITY, "Error": total - DRILL_CAPACITY} or row.sold != DRILL_CAPACITY:
        raise DrillFailed(f"statuses {dict(final)}, Capacity.sold {row.sold} (capacity {row.capacity})")
    fail_if(check_orders(prefix), "capacity")
    return (f"{total} accepted in {intake:.1f} s, settled {took:.1f} s later: {final['Issued']} Issued, "
            f"{final['Error']} Error (sold out), Capacity.sold == {row.sold}")


# ---- 5. webhooks ---------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1:port that can be down, flaky (answers 503 to the next
    `flaky` requests) or up (answers 200). Records every request it answered."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret.encode()
        self.flaky = 0
        self.log: list[tuple[str, int, bool]] = []  # (eventId, status answered, signature ok)
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    def up(self, flaky: int = 0) -> None:
        receiver = self
        self.flaky = flaky

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    if receiver.flaky > 0:
                        receiver.flaky -= 1
                        status = 503
                    else:
                        status = 200
                    try:
                        event_id = json.loads(body)["eventId"]
                    except (ValueError, KeyError, TypeError):
                        event_id = "?"
                    receiver.log.append((event_id, status, receiver.signature_ok(self.headers, body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def signature_ok(self, headers, body: bytes) -> bool:
        fields = dict(part.split("=", 1) for part in headers.get("CM-Signature", "").split(",") if "=" in part)
        expected = hmac.new(self.secret, fields.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields.get("v1", ""))


def drill_webhooks(ctx: Context) -> str:
    from notifications import tasks as notification_tasks
    from notifications.models import Delivery, Event

    prefix, total = "HOOK-", 30
    hook_port = free_port()
    api = ctx.api(HOOK_PARTNER)
    reply = api.request("POST", "/notifications/subscriptions",
                        {"eventType": "ota_cm_order_processed", "url": f"http://127.0.0.1:{hook_port}/hook"})
    if reply.status != 201:
        raise DrillFailed(f"subscribe: {reply.status} {reply.body[:300]!r} (notifications API not ready?)")
    receiver = Receiver(hook_port, reply.json()["secret"])
    ctx.start_qcluster()
    stop = threading.Event()

    def sender() -> None:  # what the deliver_due schedule does, every second rather than every minute
        while not stop.is_set():
            try:
                notification_tasks.deliver_due()
            except Exception as exc:  # keep going: the drill judges the outcome
                log(f"   deliver_due raised {type(exc).__name__}: {exc}")
            finally:
                reconnect()
            stop.wait(1.0)

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(2)]
    try:
        for i in range(total):
            r = api.request("POST", "/channelManager",
                            six_wallet_order(HOOK_PARTNER, f"{prefix}{i}", ctx.next_date(), "21:00",
                                             payment=None if i % 2 else "P"))
            if r.status != 202:
                raise DrillFailed(f"createOrder: {r.status} {r.body[:200]!r}")
        api.close()
        for t in senders:
            t.start()
        wait_settled(ctx, prefix, timeout=90)
        time.sleep(4)  # the receiver stays down a while: attempts fail with connection refused
        failed_attempts = Delivery.objects.filter(event__partner__partner_id=HOOK_PARTNER, attempt_count__gt=0,
                                                  state="pending").count()
        log(f"   receiver down: {total} orders settled, {failed_attempts} deliveries pending after failed attempts")
        receiver.up(flaky=8)
        log("   receiver up (its first 8 answers are 503)")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not Delivery.objects.filter(event__partner__partner_id=HOOK_PARTNER, state="pending").exists():
                break
            time.sleep(0.5)
    finally:
        stop.set()
        for t in senders:
            if t.is_alive():
                t.join(timeout=30)
        receiver.down()

    events = {str(e) for e in Event.objects.filter(partner__partner_id=HOOK_PARTNER).values_list("event_id", flat=True)}
    states = collections.Counter(Delivery.objects.filter(event__partner__partner_id=HOOK_PARTNER)
                                 .values_list("state", flat=True))
    ok = collections.Counter(event_id for event_id, status, _ in receiver.log if 200 <= status < 300)
    problems = []
    if len(events) != total:
        problems.append(f"{len(events)} events for {total} settled orders")
    if states != {"delivered": len(events)}:
        problems.append(f"delivery states {dict(states)}")
    problems += [f"event {e} never answered 2xx" for e in sorted(events - set(ok))]
    problems += [f"event {e} delivered {n} times after a 2xx" for e, n in ok.items() if n > 1]
    problems += [f"event {e}: bad signature" for e, _, good in receiver.log if not good]
    problems += [f"unknown event {e} received" for e in set(ok) - events]
    fail_if(problems, "webhooks")
    answered = collections.Counter(status for _, status, _ in receiver.log)
    return (f"{total} events; {failed_attempts} deliveries had failed while the receiver was down; the receiver "
            f"answered {dict(answered)}; every event delivered exactly once with a 2xx, signatures valid")


# ---- 6. isolation -------------------------------------------------------------------------------

ISO_PARTNERS = ("iso-a", "iso-b", "iso-c")
ISOLATION_ORDERS = 20  # partner A's orders per phase, one every ISOLATION_GAP seconds
ISOLATION_GAP = 0.25
ISOLATION_HOSTILE_ORDERS = 12  # orders each of B and C settle
ISOLATION_MAX_WAIT = 3.0  # no A order waits longer than this, submit to settled


class HostileEndpoint:
    """A webhook endpoint on 127.0.0.1 that accepts connections and then never answers
    ("silent"), or answers one byte a second ("drip"). Counts the connections it accepted."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        try:
            conn.settimeout(1.0)
            sent = 0
            while not self.stopped.is_set():
                try:
                    if not conn.recv(65536) and self.mode == "silent":
                        return  # the sender gave up and closed
                except TimeoutError:
                    pass
                if self.mode == "drip" and sent < len(answer):
                    conn.sendall(answer[sent:sent + 1])
                    sent += 1
        except OSError:
            return
        finally:
            conn.close()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


def settle_times(prefix: str) -> list[float]:
    """Submit-to-settled seconds of each order of the prefix, from its status history (the
    Submitted row, written in the createOrder request, and the first settled row after it)."""
    from channel_manager.orders.models import OrderStatusChange

    submitted: dict[int, object] = {}
    settled: dict[int, object] = {}
    for order_pk, to_status, at in (
        OrderStatusChange.objects.filter(order__sell_to_order_reference__startswith=prefix)
        .order_by("order_id", "at", "id").values_list("order_id", "to_status", "at")
    ):
        if to_status == "Submitted":
            submitted.setdefault(order_pk, at)
        elif to_status in SETTLED and order_pk in submitted:
            settled.setdefault(order_pk, at)
    return [(settled[pk] - submitted[pk]).total_seconds() for pk in submitted if pk in settled]


def partner_a_orders(ctx: Context, prefix: str) -> list[float]:
    """Partner A places ISOLATION_ORDERS orders, one every ISOLATION_GAP s; their settle times."""
    api = ctx.api("iso-a")
    for i in range(ISOLATION_ORDERS):
        started = time.monotonic()
        r = api.request("POST", "/channelManager", six_wallet_order("iso-a", f"{prefix}{i}", ctx.next_date(), "21:00"))
        if r.status != 202:
            raise DrillFailed(f"partner A createOrder: {r.status} {r.body[:200]!r}")
        time.sleep(max(0.0, ISOLATION_GAP - (time.monotonic() - started)))
    api.close()
    wait_settled(ctx, prefix, timeout=120)
    times = settle_times(prefix)
    if len(times) != ISOLATION_ORDERS:
        raise DrillFailed(f"{len(times)} of partner A's {ISOLATION_ORDERS} orders ({prefix}) have a settle time")
    return times


def drill_isolation(ctx: Context) -> str:
    from notifications.models import Delivery, Subscription

    ctx.start_qcluster()
    partner_a_orders(ctx, "ISO-WARM-")  # both clusters up, connections and caches warm
    quiet = partner_a_orders(ctx, "ISO-QUIET-")
    quiet_p99 = percentile(quiet, 0.99)
    log(f"   quiet: partner A p50 {percentile(quiet, 0.5):.2f} s, p99 {quiet_p99:.2f} s, max {max(quiet):.2f} s")

    hostile = {"iso-b": HostileEndpoint("silent"), "iso-c": HostileEndpoint("drip")}
    subscriptions = {}
    try:
        for partner, endpoint in hostile.items():
            api = ctx.api(partner)
            reply = api.request("POST", "/notifications/subscriptions",
                                {"eventType": "ota_cm_order_processed", "url": endpoint.url()})
            if reply.status != 201:
                raise DrillFailed(f"{partner} subscribe: {reply.status} {reply.body[:300]!r}")
            subscriptions[partner] = reply.json()["subscriptionId"]

        def hostile_orders(i: int) -> Reply:
            partner = ("iso-b", "iso-c")[i % 2]
            return ctx.api(partner).request("POST", "/channelManager", six_wallet_order(
                partner, f"ISO-HOSTILE-{partner}-{i}", ctx.next_date(), "21:00"))

        replies = parallel(2 * ISOLATION_HOSTILE_ORDERS, hostile_orders, threads=4)
        if {r.status for r in replies} != {202}:
            raise DrillFailed(f"B/C createOrder answers {collections.Counter(r.status for r in replies)}")
        wait_settled(ctx, "ISO-HOSTILE-", timeout=120)
        deadline = time.monotonic() + 15
        while min(e.connections for e in hostile.values()) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the webhook workers are busy with B's and C's endpoints
        before = {p: e.connections for p, e in hostile.items()}
        log(f"   B and C settled {2 * ISOLATION_HOSTILE_ORDERS} orders; their endpoints hold webhook workers "
            f"(connections so far: {before})")
        busy = partner_a_orders(ctx, "ISO-BUSY-")
        during = {p: e.connections - before[p] for p, e in hostile.items()}
        pending = Delivery.objects.filter(subscription__subscription_id__in=subscriptions.values(),
                                          state="pending").count()
        breakers = {
            p: (s.consecutive_failures, "open" if s.breaker_open_until else "closed")
            for p in subscriptions
            for s in [Subscription.objects.get(subscription_id=subscriptions[p])]
        }
    finally:
        for partner, subscription_id in subscriptions.items():
            ctx.api(partner).request("DELETE", f"/notifications/subscriptions/{subscription_id}")
        for endpoint in hostile.values():
            endpoint.close()

    busy_p99 = percentile(busy, 0.99)
    bound = 2 * quiet_p99 + 0.5
    found = (f"partner A submit-to-settled: quiet p50 {percentile(quiet, 0.5):.2f} s / p99 {quiet_p99:.2f} s; "
             f"with B silent and C dripping p50 {percentile(busy, 0.5):.2f} s / p99 {busy_p99:.2f} s "
             f"(bound {bound:.2f} s), max {max(busy):.2f} s; B/C endpoint connections during A's orders {during}, "
             f"{pending} B/C deliveries pending, breakers (failures, state) {breakers}")
    log(f"   {found}")
    problems = []
    if busy_p99 > bound:
        problems.append(f"partner A's p99 {busy_p99:.2f} s exceeds 2 x quiet p99 + 0.5 s = {bound:.2f} s")
    if max(busy) > ISOLATION_MAX_WAIT:
        problems.append(f"a partner A order waited {max(busy):.2f} s (limit {ISOLATION_MAX_WAIT:g} s)")
    if sum(before.values()) == 0:
        problems.append("the hostile endpoints were never contacted: the drill proved nothing")
    fail_if(problems, "isolation")
    return found


# ---- 7. Draft holds ------------------------------------------------------------------------------


def run_hold_expiry(stop: threading.Event, every: float, counts: list[int], errors: list[str]) -> None:
    """What the expire-draft-holds schedule does, every `every` seconds rather than every minute.
    A run that fails (a deadlock, say) is recorded, and fails the drill, and the next one goes on."""
    from django.db import connections

    from channel_manager.orders.tasks import expire_draft_holds_task

    try:
        while not stop.is_set():
            try:
                counts.append(expire_draft_holds_task())
            except Exception as exc:  # noqa: BLE001 - reported by the drill
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                connections.close_all()
            stop.wait(every)
    finally:
        connections.close_all()


def drill_holds(ctx: Context) -> str:
    """200 Draft holds on one slot expire over ~10 s while 300 paid orders for the same slot
    arrive, some partners confirm their Drafts right at the end of the hold, and two expiry
    runs (plus the qcluster's own schedule) work at once."""
    from django.utils import timezone

    from catalog.models import Capacity
    from channel_manager.orders.models import Order, OrderStatus, OrderStatusChange

    holds, arrivals, confirms = 200, HOLD_ARRIVALS, 40
    hold_prefix, new_prefix = "HOLD-", "HOLDNEW-"
    day = ctx.dates[len(ctx.dates) // 2 + 1]  # not the capacity drill's day
    ctx.start_qcluster()
    local = threading.local()

    def order(ref: str, payment: str | None) -> dict:
        return {"partnerId": PARTNER, "sellToOrderReference": ref, "paymentReference": payment,
                "items": [{"itemId": DRILL_ITEM, "quantity": 1, "visitDate": day, "visitTime": DRILL_SLOT}]}

    def post(i: int, ref: str, payment: str | None) -> Reply:
        if not hasattr(local, "api"):
            local.api = ctx.api()
        return local.api.request("POST", "/channelManager", order(ref, payment))

    replies = parallel(holds, lambda i: post(i, f"{hold_prefix}{i}", None), threads=16)
    if collections.Counter(r.status for r in replies) != {202: holds}:
        raise DrillFailed(f"Draft createOrder answers {dict(collections.Counter(r.status for r in replies))}")
    wait_settled(ctx, hold_prefix, timeout=120, sweep_every=2.0)
    if order_statuses(hold_prefix) != {"Draft": holds}:
        raise DrillFailed(f"the holds settled {dict(order_statuses(hold_prefix))}, expected {holds} Draft")
    row = Capacity.objects.get(item__item_id=DRILL_ITEM, visit_date=day)
    log(f"   {holds} Drafts hold {row.sold} of {row.capacity} places; their holds now end over 10 s")

    # The scene: each hold ends between 2 and 12 s from now (their real end is a day away).
    drafts = list(Order.objects.filter(sell_to_order_reference__startswith=hold_prefix).order_by("pk"))
    start = timezone.now() + dt.timedelta(seconds=2)
    ends = {o.pk: start + dt.timedelta(seconds=10 * i / holds) for i, o in enumerate(drafts)}
    for o in drafts:
        Order.objects.filter(pk=o.pk).update(hold_expires_at=ends[o.pk])
    began = time.monotonic()

    stop = threading.Event()
    expired_counts: list[int] = []
    run_errors: list[str] = []
    runners = [threading.Thread(target=run_hold_expiry, args=(stop, 1.0, expired_counts, run_errors), daemon=True)
               for _ in range(2)]
    for runner in runners:
        runner.start()

    confirm_targets = drafts[:: holds // confirms][:confirms]
    confirm_replies: list[Reply] = [None] * len(confirm_targets)  # type: ignore[list-item]

    def confirm(k: int) -> None:  # right at the end of the hold, give or take 0.3 s
        target = confirm_targets[k]
        delay = (ends[target.pk] - timezone.now()).total_seconds() + (k % 3 - 1) * 0.3
        time.sleep(max(0.0, delay))
        api = ctx.api()
        confirm_replies[k] = api.request("POST", f"/channelManager/{target.order_id}/confirm",
                                         {"paymentReference": f"PAY-{k}"})
        api.close()

    confirmers = [threading.Thread(target=confirm, args=(k,), daemon=True) for k in range(len(confirm_targets))]
    for thread in confirmers:
        thread.start()

    def arrive(i: int) -> Reply:  # paid orders, spread over the 12 s the holds take to end
        time.sleep(max(0.0, began + 12 * i / arrivals - time.monotonic()))
        return post(i, f"{new_prefix}{i}", "PAY")

    new_replies = parallel(arrivals, arrive, threads=16)
    for thread in confirmers:
        thread.join(timeout=60)
    if collections.Counter(r.status for r in new_replies) != {202: arrivals}:
        raise DrillFailed(f"paid createOrder answers {dict(collections.Counter(r.status for r in new_replies))}")
    took = wait_settled(ctx, new_prefix, timeout=180, sweep_every=2.0)
    deadline = time.monotonic() + 60
    while Order.objects.filter(sell_to_order_reference__startswith=hold_prefix, status=OrderStatus.DRAFT).exists():
        if time.monotonic() > deadline:
            raise DrillFailed(f"holds still Draft 60 s after they ended: {dict(order_statuses(hold_prefix))}")
        time.sleep(0.25)
    stop.set()
    for runner in runners:
        runner.join(timeout=60)

    problems: list[str] = [f"an expiry run failed: {error}" for error in run_errors]
    answers = collections.Counter((r.status, r.code) for r in confirm_replies if r is not None)
    if set(answers) - {(200, None), (409, "invalid_state")} or sum(answers.values()) != len(confirm_targets):
        problems.append(f"confirm answers {dict(answers)}, expected 200 or 409 invalid_state")
    final = order_statuses(hold_prefix)
    expiries = OrderStatusChange.objects.filter(
        order__sell_to_order_reference__startswith=hold_prefix, actor=HOLD_EXPIRY_ACTOR
    )
    expired = expiries.count()
    if final != {"Error": expired, "Issued": holds - expired} or answers[(200, None)] != holds - expired:
        problems.append(f"holds ended {dict(final)}: {expired} expiries, {answers[(200, None)]} confirms answered 200")
    expired_orders = len(set(expiries.values_list("order_id", flat=True)))
    if expired != expired_orders:
        problems.append(f"{expired} expiry history rows for {expired_orders} orders")
    confirmed_late = [
        o.sell_to_order_reference for o in Order.objects.filter(
            sell_to_order_reference__startswith=hold_prefix, status=OrderStatus.ISSUED)
        if o.issued_at > ends[o.pk]
    ]
    if confirmed_late:
        problems.append(f"{len(confirmed_late)} holds confirmed after their end: {confirmed_late[:5]}")
    problems += check_orders(hold_prefix) + check_orders(new_prefix)
    fail_if(problems, "holds")
    row.refresh_from_db()
    paid = order_statuses(new_prefix)
    runs = [n for n in expired_counts if n]
    confirm_figures = {f"{status} {code or ''}".strip(): n for (status, code), n in answers.items()}
    return (f"{holds} holds: {expired} expired (each once: one history row, one event, wallets void), "
            f"{holds - expired} confirmed in time, confirms {confirm_figures}; "
            f"{arrivals} paid orders meanwhile: {dict(paid)}, settled {took:.1f} s after the last; "
            f"expiry runs that found work: {len(runs)} (largest {max(runs, default=0)}); "
            f"Capacity.sold {row.sold}/{row.capacity} == live admissions")


# ---- main ----------------------------------------------------------------------------------------

DRILLS = {
    "kill": ("kill -9 the qcluster 3 times during issuance", drill_kill),
    "pgrestart": ("restart PostgreSQL under intake load", drill_pgrestart),
    "races": ("concurrent identical creates, replaces and deletes", drill_races),
    "capacity": (f"1,000 single-ticket orders on a slot of capacity {DRILL_CAPACITY}", drill_capacity),
    "webhooks": ("webhook receiver down, flaky, then up", drill_webhooks),
    "isolation": ("partner B's endpoint never answers, C's drips; A settles as on a quiet system", drill_isolation),
    "holds": ("200 Draft holds expire while paid orders for the same slot arrive", drill_holds),
}


def setup(args) -> Context:
    from django.core.management import call_command


    log("setup: migrate, demo catalog + the drill item, partners 'drill', 'hooks' and 'iso-a/b/c'")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("load_catalog", str(CATALOG), verbosity=0)
    extra = {
        "venue": json.loads(CATALOG.read_text())["venue"],
        "items": [{"itemId": DRILL_ITEM, "name": "Drill slot", "type": "ticket", "price": "1.00",
                   "timeSlots": [{"time": DRILL_SLOT, "capacity": DRILL_CAPACITY}]}],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra, handle)
    try:
        call_command("load_catalog", handle.name, verbosity=0)
    finally:
        os.unlink(handle.name)
    from channel_manager.kernel import partners

    keys = {p: partners.create_partner(partner_id=p, name=p.title())[1] for p in (PARTNER, HOOK_PARTNER, *ISO_PARTNERS)}
    port = free_port()
    # Plain-text logs at WARNING: a 500's traceback is shown from the web server's log.
    env = app_env(**FAST, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", LOG_LEVEL="WARNING", LOG_FORMAT="plain")
    ctx = Context(port, keys, env)
    ctx.gunicorn = start_gunicorn(port, env)  # production's gunicorn.conf.py
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description="Fault drills; see bench/README.md.")
    parser.add_argument("--only", default=",".join(DRILLS), help=f"comma-separated, of: {', '.join(DRILLS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(DRILLS)
    if unknown:
        sys.exit(f"unknown drills: {', '.join(sorted(unknown))}")
    require_env()
    setup_django()
    started = time.monotonic()
    ctx = setup(args)
    results: list[tuple[str, bool, str, float]] = []
    try:
        for number, name in enumerate(chosen, 1):
            title, drill = DRILLS[name]
            log(f"\n[{number}/{len(chosen)}] {name}: {title}")
            t0 = time.monotonic()
            try:
                purge_queue()
                found = drill(ctx)
                ok = True
            except DrillFailed as exc:
                found, ok = f"FAILED: {exc}", False
                trace = last_traceback(ctx.gunicorn)
                if trace:
                    log(f"   the web server's last traceback:\n{trace}")
            except Exception as exc:  # a broken drill is a failed drill; go on with the others
                import traceback

                found, ok = f"FAILED (error in the drill): {type(exc).__name__}: {exc}\n{traceback.format_exc()}", False
            finally:
                ctx.stop_qcluster()
                reconnect()
            results.append((name, ok, found, time.monotonic() - t0))
            log(f"   {'ok' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s: {found}")
    finally:
        ctx.stop_qcluster()
        ctx.gunicorn.cleanup()
    failed = [name for name, ok, _, _ in results if not ok]
    log(f"\nfault drills, {time.monotonic() - started:.0f} s in all:")
    for name, ok, found, seconds in results:
        log(f"  {'ok    ' if ok else 'FAILED'} {name:<10} {seconds:5.0f} s  {found.splitlines()[0][:200]}")
    log(f"faults: {len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
