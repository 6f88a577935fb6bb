"""Webhooks end to end: a real `manage.py qcluster` against the test database delivers to a
real receiver, also events published while no cluster ran and after a cluster was killed -9
mid-send, and the periodic deliver_due schedule sends what no task announced."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from notifications.models import Delivery, DeliveryState, Event
from notifications.signing import verify_signature
from notifications.tasks import DELIVER_DUE_SCHEDULE_NAME
from tests.factories import SubscriptionFactory
from tests.processes import kill_process_group
from tests.test_notifications_delivery import publish

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parent.parent
WAIT = 60.0


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.fail("the cluster subprocess needs a database it can share: run on PostgreSQL (make test provides it)")


def test_database_url() -> str:
    s = connection.settings_dict
    credentials = quote(s["USER"] or "", safe="")
    if s["PASSWORD"]:
        credentials += ":" + quote(s["PASSWORD"], safe="")
    host = s["HOST"] or "localhost"
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{quote(s['NAME'], safe='')}"


test_database_url.__test__ = False  # a helper, not a test


class Cluster:
    """One `python manage.py qcluster` on the test database, in its own session: by default the
    webhook cluster (Q_CLUSTER_NAME=webhooks), which alone sends deliveries."""

    def __init__(self, log_path: Path, **env_overrides: str) -> None:
        self.log_path = log_path
        env = dict(os.environ)
        env.update(
            CM_DEV="1",
            WEBHOOK_ALLOW_PRIVATE_TARGETS="1",
            DATABASE_URL=test_database_url(),
            PYTHONUNBUFFERED="1",
            Q_WORKERS="2",
            Q_WEBHOOK_WORKERS="2",
            Q_CLUSTER_NAME=settings.WEBHOOK_QUEUE,
        )
        env.update(env_overrides)
        if not env["Q_CLUSTER_NAME"]:
            del env["Q_CLUSTER_NAME"]  # the issuance cluster
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9 the whole cluster: guard, workers, monitor, pusher."""
        kill_process_group(self.process)


@pytest.fixture
def clusters(tmp_path):
    started: list[Cluster] = []

    def start(**env: str) -> Cluster:
        cluster = Cluster(tmp_path / f"qcluster.{len(started) + 1}.log", **env)
        started.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in started:
            cluster.kill()


def wait_for(condition, what: str, clusters_started=(), timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    logs = "\n".join(c.output()[-4000:] for c in clusters_started)
    pytest.fail(f"{what} within {timeout:g} s\n{logs}")


def all_delivered(events) -> bool:
    return all(
        state == DeliveryState.DELIVERED
        for state in Event.objects.filter(pk__in=[e.pk for e in events]).values_list("delivery_state", flat=True)
    )


def test_a_committed_event_reaches_the_receiver_through_a_running_cluster(partner, receiver, clusters):
    subscription = SubscriptionFactory(partner=partner, url=receiver.url())
    issuance = clusters(Q_CLUSTER_NAME="")

    with transaction.atomic():
        event = publish(partner, "order-e2e")
    # The issuance workers never send webhooks: the task waits on the webhook queue.
    time.sleep(3)
    assert receiver.received == [], issuance.output()
    assert OrmQ.objects.filter(key=settings.WEBHOOK_QUEUE).count() == 1

    cluster = clusters()

    wait_for(lambda: str(event.event_id) in receiver.event_ids(), "the receiver did not get the event", [cluster])
    got = receiver.received[0]
    assert got.json["data"]["order"]["orderId"] == "order-e2e"
    assert verify_signature(secret=subscription.secret, body=got.body, header=got.headers["CM-Signature"])
    wait_for(lambda: all_delivered([event]), "the event was not marked delivered", [cluster])
    assert len(receiver.received) == 1


def test_events_published_while_no_cluster_runs_survive_a_cluster_killed_mid_send(partner, receiver, clusters):
    SubscriptionFactory(partner=partner, url=receiver.url())
    gate = threading.Event()

    def hang(handler) -> None:  # the first request never gets its answer: its worker dies first
        gate.wait(30)

    receiver.answer(hang)

    events = []
    for i in range(3):
        with transaction.atomic():
            events.append(publish(partner, f"order-{i}"))
    # Committed, queued in the ORM broker, nothing sent: no cluster runs.
    assert OrmQ.objects.count() >= 3
    assert receiver.received == []
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}

    fast_requeue = {"Q_WEBHOOK_TIMEOUT": "4", "Q_WEBHOOK_RETRY": "5"}  # the webhook cluster's own
    first = clusters(**fast_requeue)
    wait_for(lambda: receiver.received, "the first cluster sent nothing", [first])
    first.kill()  # kill -9 while it waits for the receiver's answer
    gate.set()

    # Its claim on the delivery it was sending expires (after WEBHOOK_TIMEOUT_SECONDS + 30 s);
    # time passes here without waiting for it.
    Delivery.objects.filter(state=DeliveryState.PENDING).update(next_attempt_at=timezone.now())
    second = clusters(**fast_requeue)

    wait_for(lambda: all_delivered(events), "not every event was delivered after the restart", [first, second])
    received = receiver.event_ids()
    assert {str(e.event_id) for e in events} <= set(received)  # at least once
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


def test_the_deliver_due_schedule_sends_deliveries_whose_task_was_lost(partner, receiver, clusters):
    # The schedule comes from notifications' data migration (a flush by an earlier transactional
    # test may have removed it: create it again with the migration's own function).
    migration = importlib.import_module("notifications.migrations.0003_deliver_due_schedule")
    migration.create_deliver_due_schedule(django_apps, mock.Mock(connection=connection))
    importlib.import_module("notifications.migrations.0006_webhook_cluster_schedules").to_webhook_cluster(
        django_apps, mock.Mock(connection=connection)
    )
    Schedule.objects.filter(name=DELIVER_DUE_SCHEDULE_NAME).update(next_run=timezone.now() - dt.timedelta(seconds=1))
    SubscriptionFactory(partner=partner, url=receiver.url())
    with mock.patch("notifications.services.async_task", side_effect=ConnectionError("broker gone")):
        with transaction.atomic():
            event = publish(partner, "order-lost-task")
    assert not OrmQ.objects.exists()  # the enqueue after commit failed; the outbox row remains

    cluster = clusters()

    # django-q runs schedules every 30 s or so.
    wait_for(lambda: all_delivered([event]), "deliver_due did not send the event", [cluster], timeout=90)
    assert receiver.event_ids() == [str(event.event_id)]
