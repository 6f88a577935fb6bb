"""End to end with real django-q2 workers: `manage.py qcluster` subprocesses on the test database.

Orders are submitted the way production does (create_order; its on_commit enqueues the task),
and a real cluster issues them. The crash test kills the whole cluster with SIGKILL while
orders are in flight, restarts it, and checks that every order still settles exactly once.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.db.models import Count, Sum

from catalog.models import Capacity, Item
from catalog.selectors import clear_venue_cache, venue_today
from channel_manager.orders.models import IN_FLIGHT, Order, OrderStatus, OrderStatusChange
from channel_manager.orders.services import LineInput, OrderInput, create_order, wallets_issued_by
from channel_manager.orders.tasks import sweep_stuck_orders
from notifications.models import Event
from tests.processes import kill_process_group
from wallets.models import Asset, Wallet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parent.parent
SETTLED = (OrderStatus.DRAFT, OrderStatus.ISSUED, OrderStatus.ERROR)
_refs = itertools.count(1)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("the workers share the test database over PostgreSQL (make test provides it)")
    clear_venue_cache()


def worker_database_url() -> str:
    """DATABASE_URL of the test database this test process uses, for the worker processes."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"


class Cluster:
    """A `manage.py qcluster` in its own process group, killed for sure on the way out."""

    def __init__(self, **env: str) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="qcluster-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(
            DATABASE_URL=worker_database_url(), CM_DEV="1", Q_WORKERS="2", LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        full_env.update(env)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=REPO, env=full_env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole process group: the cluster, its workers, monitor and pusher."""
        kill_process_group(self.process)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.log.close()
        os.unlink(self.log.name)


def submit(partner, *lines: LineInput, payment: str | None = "PAY") -> Order:
    return create_order(
        partner=partner,
        order_input=OrderInput(sell_to_order_reference=f"E2E-{next(_refs):06d}", lines=lines,
                               payment_reference=payment),
    )


def submit_mixed(partner, day: dt.date, count: int, *, show) -> list[Order]:
    """A mix in fours: day tickets (Issued), a Draft package, `show(i)`'s lines (Issued), and a
    family group (Error when it is not on sale that day)."""
    orders = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            orders.append(submit(partner, LineInput("DAY-ADULT", 1 + i % 3, day)))
        elif kind == 1:
            orders.append(submit(partner, LineInput("PARK-AND-SHOW", 2, day, dt.time(19, 30)), payment=None))
        elif kind == 2:
            orders.append(submit(partner, *show(i)))
        else:
            orders.append(submit(partner, LineInput("FAMILY-GROUP", 4, day)))
    return orders


def wait_until(condition, *, timeout: float, cluster: Cluster, every: float = 0.2, tick=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if tick is not None:
            tick()
        if cluster.process.poll() is not None:
            pytest.fail(f"qcluster exited with {cluster.process.returncode}:\n{cluster.output()}")
        time.sleep(every)
    pytest.fail(
        f"timed out; statuses {dict(collections.Counter(Order.objects.values_list('status', flat=True)))}\n"
        f"{cluster.output()}"
    )


def in_flight() -> int:
    return Order.objects.filter(status__in=IN_FLIGHT).count()


def expected_assets(order: Order) -> int:
    """Assets a settled order must hold: none in Error; else its lines' wallets' contents."""
    if order.status == OrderStatus.ERROR:
        return 0
    total = 0
    for line in order.lines.all():
        wallets = wallets_issued_by(line.item_type, line.quantity)
        per_wallet = 3 if line.item_code == "PARK-AND-SHOW" else 1  # 2 component tickets + 1 coupon
        total += wallets * per_wallet
    return total


def assert_each_order_settled_exactly_once() -> None:
    orders = list(Order.objects.prefetch_related("lines"))
    assert orders and all(o.status in SETTLED for o in orders)
    settles = collections.Counter(
        OrderStatusChange.objects.filter(to_status__in=SETTLED).values_list("order_id", flat=True)
    )
    events = collections.Counter(Event.objects.values_list("subject_id", flat=True))
    assets = dict(
        Order.objects.annotate(n=Count("wallet_links__wallet__assets")).values_list("pk", "n")
    )
    for order in orders:
        assert settles[order.pk] == 1, (order, settles[order.pk])
        assert events[str(order.order_id)] == 1, (order, events[str(order.order_id)])
        assert assets[order.pk] == expected_assets(order), (order, order.status_message)
        minted = Wallet.objects.filter(order_link__order=order, minted_at__isnull=False).count()
        assert minted == (0 if order.status == OrderStatus.ERROR else order.wallet_links.count())
    # What is sold is exactly what the live tickets admit, and never more than there is.
    for row in Capacity.objects.all():
        admitted = Asset.objects.filter(
            asset_type="ticket", item_id=row.item_id, visit_date=row.visit_date, visit_time=row.visit_time,
            wallet__destroyed_at__isnull=True,
        ).aggregate(n=Sum("admits"))["n"] or 0
        assert row.sold == admitted, row
        assert row.capacity is None or row.sold <= row.capacity, row


def test_a_real_cluster_issues_submitted_orders(partner, catalog):
    day = venue_today() + dt.timedelta(days=14)
    t1930 = dt.time(19, 30)
    Item.objects.filter(item_id="FAMILY-GROUP").update(sale_until=day - dt.timedelta(days=1))
    with Cluster() as cluster:
        orders = submit_mixed(partner, day, 20, show=(
            lambda i: [LineInput("SHOW-EVENING", 1, day, t1930),
                       LineInput("DAY-ADULT", 1, day, external_reference_numbers=(f"E2E-REF-{i}",))]
        ))

        wait_until(lambda: in_flight() == 0, timeout=60, cluster=cluster)

    statuses = dict(Order.objects.values_list("pk", "status"))
    for i, order in enumerate(orders):
        expected = {0: OrderStatus.ISSUED, 1: OrderStatus.DRAFT, 2: OrderStatus.ISSUED, 3: OrderStatus.ERROR}[i % 4]
        assert statuses[order.pk] == expected, (i, Order.objects.get(pk=order.pk).status_message)
    assert_each_order_settled_exactly_once()
    assert Asset.objects.values("asset_number").distinct().count() == Asset.objects.count()
    ref = Wallet.objects.get(external_reference_number="E2E-REF-2")
    assert ref.wallet_reference_number == "E2E-REF-2" and ref.manifest_token


def test_orders_settle_exactly_once_across_a_killed_and_restarted_cluster(partner, catalog, settings):
    """kill -9 the whole cluster mid-stream; the restarted one (with the sweeper) finishes."""
    day = venue_today() + dt.timedelta(days=15)
    t1930 = dt.time(19, 30)
    # Sell out on purpose, so that some orders settle in Error and capacity accounting matters.
    Item.objects.filter(item_id="DAY-ADULT").update(capacity_per_day=400)
    fast = {"Q_RETRY": "5", "Q_TIMEOUT": "4", "ISSUANCE_STUCK_SECONDS": "3"}
    settings.ISSUANCE_STUCK_SECONDS = 3  # the test process sweeps too

    with Cluster(**fast) as first:
        for i in range(60):
            size = 1 + (i * 7) % 40
            if i % 3 == 0:
                submit(partner, LineInput("PARK-AND-SHOW", size, day, t1930))
            elif i % 3 == 1:
                submit(partner, LineInput("DAY-ADULT", size, day), payment=None)
            else:
                submit(partner, LineInput("FAMILY-GROUP", 1 + i % 6, day), LineInput("DAY-ADULT", size, day))
        wait_until(lambda: Order.objects.filter(status__in=SETTLED).count() >= 3, timeout=60, cluster=first,
                   every=0.02)
        first.kill()
    at_kill = collections.Counter(Order.objects.values_list("status", flat=True))
    print(f"\nat kill -9: {dict(at_kill)}")
    assert sum(at_kill[s] for s in IN_FLIGHT) > 0, "the cluster finished before it was killed"

    started = time.monotonic()
    last_sweep = [0.0]

    def sweep() -> None:
        if time.monotonic() - last_sweep[0] > 1:
            last_sweep[0] = time.monotonic()
            sweep_stuck_orders()

    with Cluster(**fast) as second:
        wait_until(lambda: in_flight() == 0, timeout=90, cluster=second, tick=sweep)
    print(f"after restart every order settled in {time.monotonic() - started:.1f} s: "
          f"{dict(collections.Counter(Order.objects.values_list('status', flat=True)))}")

    assert_each_order_settled_exactly_once()
    assert Order.objects.filter(status=OrderStatus.ERROR).exists()
