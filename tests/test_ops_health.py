"""/healthz, /readyz and the production settings (check --deploy, the http exemptions, dev mode)."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.db.migrations import Migration
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule

from channel_manager.ops import health

REPO = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = REPO / "channel_manager" / "deploy" / "production.env.example"


@pytest.fixture(autouse=True)
def _fresh_migration_check():
    health.forget_migration_check()
    yield
    health.forget_migration_check()


@pytest.fixture
def web() -> Client:
    return Client()


@pytest.fixture
def ready(db):
    """A system that is ready: the schedulers of both qclusters (issuance, webhooks) ran lately
    and nothing waits in either queue."""
    OrmQ.objects.all().delete()
    for name, cluster in ((health.HEARTBEAT_SCHEDULE_NAME, None),
                          (health.WEBHOOK_HEARTBEAT_SCHEDULE_NAME, settings.WEBHOOK_QUEUE)):
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": health.HEARTBEAT_FUNC, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1,
                      "next_run": timezone.now() + dt.timedelta(seconds=30), "task": "a1b2c3", "cluster": cluster},
        )


def readyz(web: Client) -> tuple[int, dict]:
    response = web.get("/readyz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_healthz_answers_ok_without_authentication_or_database(web):
    response = web.get("/healthz")  # no `db` fixture: a query would fail the test
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_is_200_when_every_check_passes(web, ready):
    status, body = readyz(web)
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "migrations", "qcluster", "webhook_qcluster", "queue", "webhook_queue"}
    assert all(check["ok"] is True and check["detail"] for check in body["checks"].values())


def test_readyz_shows_no_connection_details(web, ready):
    text = web.get("/readyz").content.decode()
    settings_dict = connection.settings_dict
    for secret in (settings_dict["NAME"], settings_dict.get("HOST"), settings_dict.get("USER"), "postgres://"):
        if secret:
            assert secret not in text


def test_readyz_is_503_when_the_database_does_not_answer(web, ready):
    error = OperationalError('connection to server at "db" failed: password authentication failed for "cm"')
    with mock.patch.object(connection, "cursor", side_effect=error):
        status, body = readyz(web)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": False, "detail": "unreachable (OperationalError)"}
    for name in ("migrations", "qcluster", "webhook_qcluster", "queue", "webhook_queue"):
        assert body["checks"][name]["ok"] is False
        assert "skipped" in body["checks"][name]["detail"]
    assert "password" not in json.dumps(body)


def test_readyz_is_503_while_a_migration_is_unapplied(web, ready):
    pending = Migration("0999_later", "channel_manager")
    with mock.patch.object(MigrationExecutor, "migration_plan", return_value=[(pending, False)]):
        status, body = readyz(web)
    assert status == 503
    assert body["checks"]["migrations"] == {"ok": False, "detail": "1 unapplied: channel_manager.0999_later"}
    assert body["checks"]["database"]["ok"] is True


def test_a_passing_migration_check_is_remembered_briefly(web, ready):
    assert readyz(web)[0] == 200
    with mock.patch.object(MigrationExecutor, "migration_plan") as plan:
        assert readyz(web)[0] == 200
    plan.assert_not_called()


def test_readyz_is_503_when_no_qcluster_scheduler_ran_for_a_minute(web, ready, settings):
    settings.QCLUSTER_MAX_SILENCE_SECONDS = 60
    schedule = Schedule.objects.get(name=health.HEARTBEAT_SCHEDULE_NAME)
    schedule.next_run = timezone.now() - dt.timedelta(seconds=50)  # overdue, within the limit
    schedule.save()
    assert readyz(web)[0] == 200
    schedule.next_run = timezone.now() - dt.timedelta(minutes=5)
    schedule.save()
    status, body = readyz(web)
    assert status == 503
    assert body["checks"]["qcluster"]["ok"] is False
    assert "no qcluster scheduler has run for 300 s" in body["checks"]["qcluster"]["detail"]
    assert body["checks"]["webhook_qcluster"]["ok"] is True


def test_readyz_is_503_when_no_webhook_qcluster_scheduler_ran_for_a_minute(web, ready, settings):
    settings.QCLUSTER_MAX_SILENCE_SECONDS = 60
    Schedule.objects.filter(name=health.WEBHOOK_HEARTBEAT_SCHEDULE_NAME).update(
        next_run=timezone.now() - dt.timedelta(minutes=5)
    )
    status, body = readyz(web)
    assert status == 503
    assert body["checks"]["qcluster"]["ok"] is True
    assert body["checks"]["webhook_qcluster"]["ok"] is False
    assert "no qcluster scheduler has run for 300 s" in body["checks"]["webhook_qcluster"]["detail"]


def test_readyz_is_503_without_the_webhook_heartbeat_schedule(web, ready):
    Schedule.objects.filter(name=health.WEBHOOK_HEARTBEAT_SCHEDULE_NAME).delete()
    status, body = readyz(web)
    assert status == 503
    assert "webhooks-qcluster-heartbeat" in body["checks"]["webhook_qcluster"]["detail"]


def test_readyz_is_503_until_a_qcluster_fired_the_heartbeat_once(web, ready):
    # As migrate leaves it: due now, never fired.
    Schedule.objects.filter(name=health.HEARTBEAT_SCHEDULE_NAME).update(next_run=timezone.now(), task=None)
    status, body = readyz(web)
    assert status == 503
    assert body["checks"]["qcluster"] == {"ok": False, "detail": "no qcluster scheduler has run yet"}


def test_readyz_is_503_without_the_heartbeat_schedule(web, ready):
    Schedule.objects.filter(name=health.HEARTBEAT_SCHEDULE_NAME).delete()
    status, body = readyz(web)
    assert status == 503
    assert "qcluster-heartbeat" in body["checks"]["qcluster"]["detail"]


def test_readyz_is_503_when_the_oldest_queued_task_waited_too_long(web, ready, settings):
    settings.QUEUE_MAX_AGE_SECONDS = 120
    now = timezone.now()
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now - dt.timedelta(seconds=30))
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now + dt.timedelta(seconds=100))  # running
    status, body = readyz(web)
    assert status == 200, body
    assert body["checks"]["queue"]["detail"].startswith("1 waiting, 1 running, oldest waiting 30 s")

    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now - dt.timedelta(minutes=10))
    status, body = readyz(web)
    assert status == 503
    assert body["checks"]["queue"] == {
        "ok": False, "detail": "2 waiting, 1 running, oldest waiting 600 s (limit 120 s)"
    }
    assert body["checks"]["webhook_queue"] == {"ok": True, "detail": "0 waiting, 0 running, oldest waiting 0 s"}


def test_a_stalled_webhook_queue_is_its_own_check(web, ready, settings):
    settings.QUEUE_MAX_AGE_SECONDS = 120
    now = timezone.now()
    OrmQ.objects.create(key=settings.WEBHOOK_QUEUE, payload="x", lock=now - dt.timedelta(minutes=10))
    OrmQ.objects.create(key=settings.Q_CLUSTER["name"], payload="x", lock=now - dt.timedelta(seconds=5))
    status, body = readyz(web)
    assert status == 503
    assert body["checks"]["queue"]["ok"] is True
    assert body["checks"]["queue"]["detail"].startswith("1 waiting, 0 running")
    assert body["checks"]["webhook_queue"] == {
        "ok": False, "detail": "1 waiting, 0 running, oldest waiting 600 s (limit 120 s)"
    }


def test_the_heartbeat_schedule_comes_with_the_migrations(db):
    # A transactional test may have flushed the rows migration 0004 made: run its step again,
    # as migrate does (it only creates what is missing).
    from django.apps import apps

    from channel_manager.ops.housekeeping import SCHEDULES

    migration = importlib.import_module("channel_manager.migrations.0004_housekeeping_schedules")
    editor = SimpleNamespace(connection=connection)
    migration.create_schedules(apps, editor)
    migration.create_schedules(apps, editor)  # twice: nothing doubles
    importlib.import_module("channel_manager.migrations.0010_tombstone_housekeeping").create_schedule(apps, editor)
    names = list(Schedule.objects.values_list("name", flat=True))
    assert len(names) == len(set(names))
    assert {health.HEARTBEAT_SCHEDULE_NAME, *SCHEDULES} <= set(names)
    assert Schedule.objects.get(name=health.HEARTBEAT_SCHEDULE_NAME).minutes == 1


def test_the_webhook_cluster_has_its_own_heartbeat_and_runs_the_deliver_due_schedule(db):
    # Only the webhook cluster's scheduler runs a schedule whose cluster is "webhooks"; the
    # default cluster runs those whose cluster is NULL (django_q.scheduler).
    from django.apps import apps

    importlib.import_module("notifications.migrations.0003_deliver_due_schedule").create_deliver_due_schedule(
        apps, SimpleNamespace(connection=connection)
    )
    migration = importlib.import_module("notifications.migrations.0006_webhook_cluster_schedules")
    editor = SimpleNamespace(connection=connection)
    migration.to_webhook_cluster(apps, editor)
    migration.to_webhook_cluster(apps, editor)  # twice: nothing doubles
    (heartbeat,) = Schedule.objects.filter(name=health.WEBHOOK_HEARTBEAT_SCHEDULE_NAME)
    assert (heartbeat.func, heartbeat.minutes, heartbeat.cluster) == (health.HEARTBEAT_FUNC, 1, settings.WEBHOOK_QUEUE)
    assert Schedule.objects.get(name="deliver-due-webhooks").cluster == settings.WEBHOOK_QUEUE == "webhooks"


def test_heartbeat_task_runs():
    assert health.heartbeat()


# ---- production settings ----------------------------------------------------------------------


def production_env(**extra: str) -> dict[str, str]:
    """The example production environment with a real secret key; nothing of the test's own."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["SECRET_KEY"] = secrets.token_urlsafe(64)
    env.update(extra)
    return env


def shown(result: subprocess.CompletedProcess) -> list:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("variant", ["example", "defaults"])
def test_check_deploy_is_clean_with_the_production_environment(variant):
    if variant == "example":
        env = production_env()
    else:  # nothing but a secret key: the defaults are the production ones
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET_KEY": secrets.token_urlsafe(64)}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps([s.SECURE_SSL_REDIRECT, "
    "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.LOG_FORMAT, "
    "getattr(s, 'SECURE_PROXY_SSL_HEADER', None)]))"
)


def test_production_defaults_are_secure_and_development_stays_plain_http():
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    prod = manage("shell", "-c", SHOW, env={**base, "SECRET_KEY": secrets.token_urlsafe(64)})
    assert shown(prod) == [True, True, True, 31_536_000, "json", None]

    dev = manage("shell", "-c", SHOW, env={**base, "CM_DEV": "1"})
    assert shown(dev) == [False, False, False, 0, "plain", None]

    proxied = manage("shell", "-c", SHOW, env=production_env(SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https"))
    assert shown(proxied)[-1] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_probes_and_scrapes_are_exempt_from_the_https_redirect(ready, settings):
    settings.SECURE_SSL_REDIRECT = True
    web = Client()  # the middleware reads the setting when the client builds its chain
    assert web.get("/healthz").status_code == 200
    assert web.get("/readyz").status_code == 200
    assert web.get("/metrics").status_code == 200  # from 127.0.0.1
    redirected = web.get("/channelManager?status=Draft")
    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/channelManager?status=Draft"
    assert web.get("/readyz", secure=True).status_code == 200
