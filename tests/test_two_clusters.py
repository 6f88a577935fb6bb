"""Several machines: two `manage.py qcluster` processes (as on two worker machines: same
Q_CLUSTER_NAME, same database, same SECRET_KEY) serve one queue on PostgreSQL while a few hundred
orders are issued. Each order is issued exactly once, both clusters take a share, and their
schedulers keep /readyz's qcluster check green."""

from __future__ import annotations

import collections
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from catalog.models import Item
from catalog.selectors import clear_venue_cache, venue_today
from channel_manager.ops import health
from channel_manager.orders.models import IN_FLIGHT, Order, OrderStatus
from channel_manager.orders.services import LineInput
from tests.test_worker_e2e import Cluster, assert_each_order_settled_exactly_once, submit_mixed
from wallets.models import Asset

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ORDERS = 300


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.fail("the clusters share the test database over PostgreSQL (make test provides it)")
    clear_venue_cache()


def log_text(cluster: Cluster) -> str:
    cluster.log.flush()
    return Path(cluster.log.name).read_text(errors="replace")


def json_lines(text: str) -> list[dict]:
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a worker's stray output; the assertions below do not depend on it
    return records


def settled_by(text: str) -> dict[str, int]:
    """{orderId: pid of the worker process} for every "order … settled …" line of one cluster."""
    return {
        r["order_id"]: r["pid"] for r in json_lines(text)
        if r.get("logger") == "channel_manager.orders.issuance" and " settled " in r.get("message", "")
    }


def wait_for(condition, what: str, clusters: list[Cluster], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for cluster in clusters:
            if cluster.process.poll() is not None:
                pytest.fail(f"a qcluster exited with {cluster.process.returncode} while waiting for {what}:\n"
                            f"{cluster.output()}")
        if time.monotonic() > deadline:
            statuses = dict(collections.Counter(Order.objects.values_list("status", flat=True)))
            pytest.fail(f"timed out waiting for {what}; orders {statuses}\n"
                        + "\n---\n".join(c.output() for c in clusters))
        time.sleep(0.2)


def test_two_clusters_share_one_queue_and_issue_every_order_exactly_once(partner, catalog):
    day = venue_today() + dt.timedelta(days=21)
    t2100 = dt.time(21, 0)  # 200 places in each show slot: 150 at 19:30 and 75 at 21:00 are sold here
    Item.objects.filter(item_id="FAMILY-GROUP").update(sale_until=day - dt.timedelta(days=1))  # → Error
    OrmQ.objects.all().delete()
    # No scheduler has run for ten minutes: /readyz says so until one of the clusters runs.
    Schedule.objects.update_or_create(
        name=health.HEARTBEAT_SCHEDULE_NAME,
        defaults={"func": health.HEARTBEAT_FUNC, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
                  "next_run": timezone.now() - dt.timedelta(minutes=10), "task": None},
    )
    assert not health.check_qcluster().ok

    env = {"LOG_FORMAT": "json", "Q_WORKERS": "2", "Q_CLUSTER_NAME": settings.Q_CLUSTER["name"]}
    clusters: list[Cluster] = []
    try:
        clusters.append(Cluster(**env))
        clusters.append(Cluster(**env))
        wait_for(lambda: all("running." in log_text(c) for c in clusters), "both clusters to start", clusters, 60)

        orders = submit_mixed(partner, day, ORDERS, show=(
            lambda i: [LineInput("SHOW-EVENING", 1, day, t2100), LineInput("DAY-ADULT", 1, day)]
        ))
        wait_for(lambda: not Order.objects.filter(status__in=IN_FLIGHT).exists(), "every order to settle",
                 clusters, 180)
        # The schedulers run about every 30 s in each cluster.
        wait_for(lambda: health.check_qcluster().ok, "a scheduler to fire the heartbeat", clusters, 75)
        logs = [log_text(c) for c in clusters]
    finally:
        for cluster in clusters:
            cluster.kill()
        for cluster in clusters:
            cluster.__exit__(None, None, None)

    assert Order.objects.count() == ORDERS
    # Exactly once: one settling status change, one event and the right assets per order.
    assert_each_order_settled_exactly_once()
    assert Asset.objects.values("asset_number").distinct().count() == Asset.objects.count()
    statuses = collections.Counter(Order.objects.values_list("status", flat=True))
    assert statuses == {OrderStatus.ISSUED: ORDERS // 2, OrderStatus.DRAFT: ORDERS // 4,
                        OrderStatus.ERROR: ORDERS // 4}

    # Shared: each cluster settled some of the orders, none settled one twice.
    first, second = (settled_by(text) for text in logs)
    print(f"\nsettled by the first cluster: {len(first)}, by the second: {len(second)}")
    assert set(first) | set(second) == {str(o.order_id) for o in orders}
    assert not set(first) & set(second)
    assert len(first) >= ORDERS // 20 and len(second) >= ORDERS // 20, (len(first), len(second))
    assert not set(first.values()) & set(second.values())  # different worker processes
