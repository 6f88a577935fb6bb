"""Liveness and readiness, for load balancers and orchestrators. No authentication, no secrets.

- `GET /healthz`: the process answers: 200 {"status": "ok"}. Touches nothing else.
- `GET /readyz`: 200 when every check passes, else 503; the body lists each check:
  `{"status": "ok"|"unavailable", "checks": {"database": {"ok": true, "detail": "…"}, …}}`.

  database    the default database answers `SELECT 1`
  migrations  no migration is left to apply (the MigrationExecutor plan is empty)
  qcluster    an issuance qcluster is running: its scheduler fired the "qcluster-heartbeat" schedule at
              least once and on time. django-q2 keeps its cluster statistics in the Django cache,
              which is per-process by default, so the evidence used here is in the database: the
              scheduler (in every qcluster, any machine) advances that every-minute schedule's
              `next_run` (and sets `task`) each time it fires it, roughly every 30 s. A `next_run`
              more than QCLUSTER_MAX_SILENCE_SECONDS in the past means no scheduler has run since.
  webhook_qcluster  the same for the webhook cluster (Q_CLUSTER_NAME=webhooks), from its own
              "webhooks-qcluster-heartbeat" schedule, which only that cluster's scheduler runs
              (the schedule's cluster field)
  queue       the oldest task waiting in the issuance queue (django-q2's ORM broker, table
              django_q_ormq, key Q_SITE_NAME) has waited less than QUEUE_MAX_AGE_SECONDS
  webhook_queue  the same for the webhook queue (key settings.WEBHOOK_QUEUE)

The checks that read the database are skipped (and fail) when the database does not answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Min, Q
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

HEARTBEAT_SCHEDULE_NAME = "qcluster-heartbeat"
# Created by notifications' migration 0006 with cluster = settings.WEBHOOK_QUEUE.
WEBHOOK_HEARTBEAT_SCHEDULE_NAME = "webhooks-qcluster-heartbeat"
# The queues, by the label /metrics and /readyz give them.
ISSUANCE = "issuance"
WEBHOOKS = "webhooks"
HEARTBEAT_FUNC = "channel_manager.ops.health.heartbeat"
DEFAULT_QCLUSTER_MAX_SILENCE_SECONDS = 60
DEFAULT_QUEUE_MAX_AGE_SECONDS = 300
# A successful migration check is remembered this long (it reads every migration file).
MIGRATIONS_OK_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


# ---- what the checks and the metrics read -----------------------------------------------------


@dataclass(frozen=True)
class QueueStats:
    waiting: int  # queued, not handed to a worker (or handed out and not acknowledged in time)
    running: int  # handed to a worker, not yet acknowledged
    oldest_age_seconds: float  # how long the oldest waiting task has waited; 0 when none waits


def queue_keys() -> dict[str, str]:
    """{label: the ORM broker's key} of each queue: issuance (django-q2's default cluster, named
    by the site) and webhooks (the alternative cluster)."""
    return {ISSUANCE: settings.Q_CLUSTER["name"], WEBHOOKS: settings.WEBHOOK_QUEUE}


def queue_stats() -> dict[str, QueueStats]:
    """{label: stats} of each queue, in one query over django-q2's ORM broker table. A row's
    `lock` is the time it became available: its enqueue time, or, once a worker took it, the time
    it will be handed out again unless acknowledged (so `lock` in the future means "being
    worked on")."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    now = timezone.now()
    keys = queue_keys()
    rows = {
        row["key"]: row
        for row in OrmQ.objects.using(Conf.ORM).filter(key__in=keys.values()).order_by().values("key").annotate(
            waiting=Count("id", filter=Q(lock__lte=now)),
            running=Count("id", filter=Q(lock__gt=now)),
            oldest=Min("lock", filter=Q(lock__lte=now)),
        )
    }
    stats = {}
    for label, key in keys.items():
        row = rows.get(key, {"waiting": 0, "running": 0, "oldest": None})
        oldest = row["oldest"]
        age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        stats[label] = QueueStats(waiting=row["waiting"], running=row["running"], oldest_age_seconds=age)
    return stats


def heartbeat() -> str:
    """The task of the "qcluster-heartbeat" schedule (every minute). Its run proves little by
    itself; the scheduler advancing the schedule is what /readyz reads, and a worker taking the
    task off the queue keeps the queue check honest when nothing else is queued."""
    return timezone.now().isoformat()


# ---- the checks -------------------------------------------------------------------------------


def check_database() -> Check:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("readiness: database unavailable: %s", type(error).__name__)
        return Check(False, f"unreachable ({type(error).__name__})")
    return Check(True, "reachable")


_migrations_ok_until = 0.0


def check_migrations() -> Check:
    global _migrations_ok_until
    if time.monotonic() < _migrations_ok_until:
        return Check(True, "all applied")
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        return Check(False, f"{len(names)} unapplied: {shown}")
    _migrations_ok_until = time.monotonic() + MIGRATIONS_OK_CACHE_SECONDS
    return Check(True, "all applied")


def forget_migration_check() -> None:
    global _migrations_ok_until
    _migrations_ok_until = 0.0


def _check_heartbeat(schedule_name: str) -> Check:
    from django_q.models import Schedule

    limit = getattr(settings, "QCLUSTER_MAX_SILENCE_SECONDS", DEFAULT_QCLUSTER_MAX_SILENCE_SECONDS)
    row = Schedule.objects.filter(name=schedule_name).exclude(repeats=0).values_list("next_run", "task").first()
    if row is None or row[0] is None:
        return Check(False, f"no active schedule {schedule_name!r} (run migrate)")
    next_run, last_task = row
    if not last_task:  # created by migrate, never fired: no qcluster has run against this database yet
        return Check(False, "no qcluster scheduler has run yet")
    overdue = (timezone.now() - next_run).total_seconds()
    if overdue > limit:
        return Check(False, f"no qcluster scheduler has run for {overdue:.0f} s (limit {limit} s)")
    return Check(True, "a qcluster scheduler ran within the last minute")


def check_qcluster() -> Check:
    """An issuance qcluster's scheduler ran lately."""
    return _check_heartbeat(HEARTBEAT_SCHEDULE_NAME)


def check_webhook_qcluster() -> Check:
    """A webhook qcluster's (Q_CLUSTER_NAME=webhooks) scheduler ran lately."""
    return _check_heartbeat(WEBHOOK_HEARTBEAT_SCHEDULE_NAME)


def _check_queue(label: str) -> Check:
    limit = getattr(settings, "QUEUE_MAX_AGE_SECONDS", DEFAULT_QUEUE_MAX_AGE_SECONDS)
    stats = queue_stats()[label]
    detail = f"{stats.waiting} waiting, {stats.running} running, oldest waiting {stats.oldest_age_seconds:.0f} s"
    if stats.oldest_age_seconds > limit:
        return Check(False, f"{detail} (limit {limit} s)")
    return Check(True, detail)


def check_queue() -> Check:
    """The issuance workers keep up."""
    return _check_queue(ISSUANCE)


def check_webhook_queue() -> Check:
    """The webhook workers keep up."""
    return _check_queue(WEBHOOKS)


CHECKS: tuple[tuple[str, Callable[[], Check]], ...] = (
    ("database", check_database),
    ("migrations", check_migrations),
    ("qcluster", check_qcluster),
    ("webhook_qcluster", check_webhook_qcluster),
    ("queue", check_queue),
    ("webhook_queue", check_webhook_queue),
)


def readiness() -> dict[str, Check]:
    results: dict[str, Check] = {}
    for name, check in CHECKS:
        if name != "database" and not results["database"].ok:
            results[name] = Check(False, "skipped: database unreachable")
            continue
        try:
            results[name] = check()
        except DatabaseError as error:
            results[name] = Check(False, f"database error ({type(error).__name__})")
        except Exception:
            logger.exception("readiness check %s failed", name)
            results[name] = Check(False, "check failed (see the server log)")
    return results


# ---- the views --------------------------------------------------------------------------------


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    results = readiness()
    ready = all(check.ok for check in results.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: {"ok": check.ok, "detail": check.detail} for name, check in results.items()},
        "checkedAt": timezone.now().astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return JsonResponse(body, status=200 if ready else 503)
