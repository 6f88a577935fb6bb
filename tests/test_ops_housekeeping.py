"""Housekeeping: what each pruner deletes, what it keeps, and that a run is bounded."""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule, Task

from channel_manager.kernel.models import IdempotencyRecord
from channel_manager.ops import housekeeping
from notifications.models import Delivery, DeliveryAttempt, DeliveryState, Event
from notifications.services import publish_event
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def ago(**delta) -> dt.datetime:
    return timezone.now() - dt.timedelta(**delta)


def idempotency_records(partner, count: int, *, age: dt.timedelta) -> None:
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(partner=partner, key=f"k-{uuid.uuid4()}", request_hash="h", response_status=202,
                          created_at=timezone.now() - age)
        for _ in range(count)
    )


# ---- idempotency records --------------------------------------------------------------------------


def test_idempotency_records_are_kept_for_the_retention_period(partner, settings):
    settings.IDEMPOTENCY_RETENTION_HOURS = 48
    idempotency_records(partner, 3, age=dt.timedelta(hours=49))
    idempotency_records(partner, 2, age=dt.timedelta(hours=47))
    assert housekeeping.prune_idempotency_records() == 3
    assert IdempotencyRecord.objects.count() == 2
    assert housekeeping.prune_idempotency_records() == 0

    settings.IDEMPOTENCY_RETENTION_HOURS = 24
    assert housekeeping.prune_idempotency_records() == 2


def test_a_run_deletes_at_most_one_batch_in_one_statement(partner, settings):
    idempotency_records(partner, 25, age=dt.timedelta(days=5))
    with CaptureQueriesContext(connection) as queries:
        assert housekeeping.prune_idempotency_records(limit=10) == 10
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 1 and "LIMIT 10" in deletes[0]
    assert not any(q["sql"].startswith("SELECT") for q in queries.captured_queries)  # no rows fetched first
    settings.HOUSEKEEPING_BATCH = 12
    assert housekeeping.prune_idempotency_records() == 12
    assert housekeeping.prune_idempotency_records() == 3
    assert housekeeping.prune_idempotency_records() == 0
    assert not IdempotencyRecord.objects.exists()


# ---- task results ---------------------------------------------------------------------------------


def task_result(*, success: bool, age: dt.timedelta) -> Task:
    stopped = timezone.now() - age
    return Task.objects.create(
        id=uuid.uuid4().hex, name=f"t-{uuid.uuid4().hex[:8]}", func="channel_manager.ops.health.heartbeat",
        started=stopped - dt.timedelta(seconds=1), stopped=stopped, success=success, result="ok",
    )


def test_task_results_are_pruned_by_age_failures_kept_longer(settings):
    settings.TASK_RESULT_RETENTION_DAYS = 7
    settings.FAILED_TASK_RETENTION_DAYS = 30
    old_success = task_result(success=True, age=dt.timedelta(days=8))
    recent_success = task_result(success=True, age=dt.timedelta(days=6))
    kept_failure = task_result(success=False, age=dt.timedelta(days=20))
    old_failure = task_result(success=False, age=dt.timedelta(days=31))
    assert housekeeping.prune_task_results() == 2
    left = set(Task.objects.values_list("id", flat=True))
    assert left == {recent_success.id, kept_failure.id}
    assert old_success.id not in left and old_failure.id not in left


def test_task_results_share_one_batch(settings):
    for _ in range(4):
        task_result(success=True, age=dt.timedelta(days=10))
        task_result(success=False, age=dt.timedelta(days=40))
    assert housekeeping.prune_task_results(limit=5) == 5
    assert housekeeping.prune_task_results(limit=5) == 3
    assert not Task.objects.exists()


# ---- webhook attempts and events ------------------------------------------------------------------


def event_with_delivery(partner, *, state: str, age: dt.timedelta, attempts: int = 2) -> Event:
    """An event of `age` whose one delivery (none for state none) is in `state`, with attempts."""
    if not partner.subscriptions.exists():
        SubscriptionFactory(partner=partner)
    with mock.patch("notifications.services.async_task"):
        event = publish_event(event_type="ota_cm_order_processed", partner_pk=partner.pk,
                              subject_id=str(uuid.uuid4()), payload={"x": 1})
    when = timezone.now() - age
    Event.objects.filter(pk=event.pk).update(created_at=when, delivery_state=state)
    if state == DeliveryState.NONE:
        Delivery.objects.filter(event=event).delete()
        return event
    delivery = Delivery.objects.get(event=event)
    Delivery.objects.filter(pk=delivery.pk).update(state=state)
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(delivery=delivery, at=when, status_code=200) for _ in range(attempts)
    )
    return event


def test_attempts_of_delivered_deliveries_go_after_thirty_days(partner, settings):
    settings.DELIVERY_ATTEMPT_RETENTION_DAYS = 30
    old_delivered = event_with_delivery(partner, state=DeliveryState.DELIVERED, age=dt.timedelta(days=31))
    recent_delivered = event_with_delivery(partner, state=DeliveryState.DELIVERED, age=dt.timedelta(days=29))
    old_pending = event_with_delivery(partner, state=DeliveryState.PENDING, age=dt.timedelta(days=31))
    old_failed = event_with_delivery(partner, state=DeliveryState.FAILED, age=dt.timedelta(days=31))
    assert housekeeping.prune_delivery_attempts() == 2
    counts = {e.pk: DeliveryAttempt.objects.filter(delivery__event=e).count()
              for e in (old_delivered, recent_delivered, old_pending, old_failed)}
    assert counts == {old_delivered.pk: 0, recent_delivered.pk: 2, old_pending.pk: 2, old_failed.pk: 2}
    assert Delivery.objects.filter(event=old_delivered).exists()  # the delivery itself stays


def test_old_settled_events_go_with_their_deliveries_failed_and_pending_stay(partner, settings):
    settings.EVENT_RETENTION_DAYS = 90
    delivered = event_with_delivery(partner, state=DeliveryState.DELIVERED, age=dt.timedelta(days=91))
    nobody = event_with_delivery(partner, state=DeliveryState.NONE, age=dt.timedelta(days=91))
    failed = event_with_delivery(partner, state=DeliveryState.FAILED, age=dt.timedelta(days=91))
    pending = event_with_delivery(partner, state=DeliveryState.PENDING, age=dt.timedelta(days=91))
    recent = event_with_delivery(partner, state=DeliveryState.DELIVERED, age=dt.timedelta(days=89))
    assert housekeeping.prune_events() == 2
    assert set(Event.objects.values_list("pk", flat=True)) == {failed.pk, pending.pk, recent.pk}
    assert not Delivery.objects.filter(event_id__in=[delivered.pk, nobody.pk]).exists()
    assert not DeliveryAttempt.objects.filter(delivery__event_id__in=[delivered.pk, nobody.pk]).exists()


def test_events_are_pruned_in_smaller_batches(partner):
    for _ in range(3):
        event_with_delivery(partner, state=DeliveryState.DELIVERED, age=dt.timedelta(days=100), attempts=1)
    assert housekeeping.prune_events(limit=20) == 2  # a tenth of the batch: events cascade
    assert housekeeping.prune_events(limit=20) == 1


# ---- the schedules --------------------------------------------------------------------------------


def test_the_migration_creates_each_schedule_once_and_leaves_edited_ones_alone():
    migration = importlib.import_module("channel_manager.migrations.0004_housekeeping_schedules")
    Schedule.objects.filter(name__in=[name for name, _, _ in migration.SCHEDULES]).delete()
    editor = mock.Mock(connection=connection)
    migration.create_schedules(django_apps, editor)
    Schedule.objects.filter(name="prune-events").update(minutes=60)
    migration.create_schedules(django_apps, editor)
    importlib.import_module("channel_manager.migrations.0005_task_paths").forward(django_apps, editor)
    tombstones = importlib.import_module("channel_manager.migrations.0010_tombstone_housekeeping")
    tombstones.create_schedule(django_apps, editor)
    tombstones.create_schedule(django_apps, editor)  # twice: nothing doubles
    test_mode = importlib.import_module("channel_manager.migrations.0013_test_mode")
    test_mode.create_schedule(django_apps, editor)
    test_mode.create_schedule(django_apps, editor)
    gate_changes = importlib.import_module("channel_manager.migrations.0016_gate_change_housekeeping")
    gate_changes.create_schedule(django_apps, editor)
    gate_changes.create_schedule(django_apps, editor)
    names = [n for n, _, _ in migration.SCHEDULES] + [
        tombstones.SCHEDULE_NAME, test_mode.SCHEDULE_NAME, gate_changes.SCHEDULE_NAME,
    ]
    schedules = {s.name: s for s in Schedule.objects.filter(name__in=names)}
    assert len(schedules) == Schedule.objects.filter(name__in=names).count() == 8
    assert schedules["prune-events"].minutes == 60
    assert schedules["qcluster-heartbeat"].minutes == 1
    assert all(s.repeats == -1 and s.schedule_type == Schedule.MINUTES for s in schedules.values())
    assert {name: s.func for name, s in schedules.items() if name != "qcluster-heartbeat"} == housekeeping.SCHEDULES
    for schedule in schedules.values():
        assert callable(import_string(schedule.func))
