"""What /metrics reads from the database at scrape time: orders by status, the task queues, and
the readiness checks of /readyz (so that Prometheus can alert on readiness per check)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.metrics_core import GaugeMetricFamily

from channel_manager.ops.health import queue_stats, readiness
from channel_manager.orders.models import Order, OrderStatus

logger = logging.getLogger(__name__)


class DatabaseCollector:
    """Orders by status and the task queue, read when scraped."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("cm_metrics_database_up", "1 when the database answered this scrape's queries.")
        try:
            # Live orders only: test orders are no sales (API.md, "Test mode").
            counts = dict(
                Order.objects.filter(livemode=True).order_by().values("status").annotate(n=Count("id"))
                .values_list("status", "n")
            )
            stats = queue_stats()
        except DatabaseError as error:
            logger.warning("metrics: database unavailable: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        orders = GaugeMetricFamily("cm_orders", "Live orders by status (test orders not counted).", labels=["status"])
        for status in OrderStatus.values:
            orders.add_metric([status], counts.get(status, 0))
        yield orders
        tasks = GaugeMetricFamily(
            "cm_queue_tasks", "Tasks in each django-q2 queue (issuance, webhooks), by state.", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "cm_queue_oldest_age_seconds", "How long the oldest waiting task of each queue has waited (0: none waits).",
            labels=["queue"],
        )
        for queue, queue_stats_ in stats.items():
            tasks.add_metric([queue, "waiting"], queue_stats_.waiting)
            tasks.add_metric([queue, "running"], queue_stats_.running)
            oldest.add_metric([queue], queue_stats_.oldest_age_seconds)
        yield tasks
        yield oldest


class ReadinessCollector:
    """The checks of /readyz, run at scrape time: 1 passing, 0 failing (a few small queries; a
    passing migration check is cached)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        results = readiness()  # never raises: a failing check is a result
        ready = GaugeMetricFamily("cm_ready", "1 when every readiness check of /readyz passes.")
        ready.add_metric([], int(all(check.ok for check in results.values())))
        yield ready
        checks = GaugeMetricFamily("cm_readiness_check", "Each readiness check of /readyz: 1 passing, 0 failing.",
                                   labels=["check"])
        for name, check in results.items():
            checks.add_metric([name], int(check.ok))
        yield checks
