"""/metrics: who may scrape it, what it shows, and the several-process mode under gunicorn."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.test import Client
from django.urls import resolve
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from drf_spectacular.generators import SchemaGenerator
from prometheus_client.parser import text_string_to_metric_families

from channel_manager.kernel.logs import OPERATIONS
from channel_manager.orders.models import Order, OrderStatus
from notifications import metrics as delivery_metrics
from notifications.models import DeliveryState
from notifications.services import publish_event
from tests import payloads
from tests.factories import SubscriptionFactory
from tests.test_notifications_delivery import Receiver

REPO = Path(__file__).resolve().parent.parent


def scrape(web: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape of /metrics."""
    response = (web or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ---- operation names --------------------------------------------------------------------------


def test_every_operation_of_the_contract_is_named_by_its_operation_id():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    named = {}
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "X-1", path)
        url_name = resolve(concrete).url_name
        for method, operation in operations.items():
            named[(url_name, method.upper())] = operation["operationId"]
    # OCTO's operations (/octo/) are named too, but their contract is octo-types', not /api/schema/.
    assert named == {key: name for key, name in OPERATIONS.items() if not key[0].startswith("octo-")}


# ---- access -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_a_token_only_a_scrape_bearing_it_is_answered(settings):
    settings.METRICS_TOKEN = "scrape-token-123"
    web = Client(REMOTE_ADDR="203.0.113.9")
    missing = web.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert web.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    assert web.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-token-123").status_code == 401
    assert Client().get("/metrics").status_code == 401  # loopback needs it too
    answered = web.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert answered.status_code == 200
    assert answered["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("remote_addr", "networks", "status"),
    [
        ("127.0.0.1", [], 200),
        ("::1", [], 200),
        ("::ffff:127.0.0.1", [], 200),
        ("10.1.2.3", [], 403),
        ("10.1.2.3", ["10.0.0.0/8"], 200),
        ("192.168.1.2", ["10.0.0.0/8", "192.168.1.0/24"], 200),
        ("192.168.2.2", ["10.0.0.0/8", "192.168.1.0/24"], 403),
        ("not-an-address", [], 403),
    ],
)
def test_without_a_token_only_loopback_and_the_allowed_networks_may_scrape(settings, remote_addr, networks, status):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = networks
    assert Client(REMOTE_ADDR=remote_addr).get("/metrics").status_code == status


@pytest.mark.django_db
@pytest.mark.parametrize("remote_addr", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "203.0.113.9"])
def test_in_production_without_a_token_or_networks_metrics_are_refused(settings, remote_addr):
    """A proxy on the same machine makes every outside request come from loopback: in production
    loopback alone is no rule, and /metrics is off until one is set."""
    settings.DEV = False
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    response = Client(REMOTE_ADDR=remote_addr).get("/metrics", secure=True)
    assert response.status_code == 403
    assert b"METRICS_TOKEN" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("remote_addr", "networks", "status"),
    [
        ("10.1.2.3", ["10.0.0.0/8"], 200),
        ("127.0.0.1", ["10.0.0.0/8"], 403),  # loopback only when listed
        ("::1", ["10.0.0.0/8"], 403),
        ("127.0.0.1", ["127.0.0.1/32"], 200),
        ("192.168.1.2", ["10.0.0.0/8"], 403),
    ],
)
def test_in_production_only_the_networks_set_explicitly_may_scrape(settings, remote_addr, networks, status):
    settings.DEV = False
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = networks
    assert Client(REMOTE_ADDR=remote_addr).get("/metrics", secure=True).status_code == status


@pytest.mark.django_db
def test_in_production_a_token_alone_serves_metrics(settings):
    settings.DEV = False
    settings.METRICS_TOKEN = "scrape-token-123"
    settings.METRICS_ALLOWED_NETWORKS = []
    web = Client(REMOTE_ADDR="203.0.113.9")
    assert web.get("/metrics", secure=True).status_code == 401
    assert web.get("/metrics", secure=True, HTTP_AUTHORIZATION="Bearer scrape-token-123").status_code == 200


# ---- content ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_latency_is_recorded_per_operation_and_status(client, catalog):
    before = scrape()
    assert client.post("/channelManager", payloads.order_body(), format="json").status_code == 202
    order_id = client.get("/channelManager").json()["results"][0]["orderId"]
    assert client.get(f"/channelManager/{order_id}").status_code == 200
    assert client.get("/channelManager/not-an-order").status_code == 404
    assert Client().get("/healthz").status_code == 200
    after = scrape()

    def grew(operation: str, status: str) -> float:
        name = "cm_http_request_duration_seconds_count"
        return value(after, name, operation=operation, status=status) - value(before, name, operation=operation,
                                                                              status=status)

    assert grew("createOrder", "202") == 1
    assert grew("findOrders", "200") == 1
    assert grew("getOrder", "200") == 1
    assert grew("getOrder", "404") == 1
    assert grew("healthz", "200") == 1
    buckets = [k for k in after if k[0] == "cm_http_request_duration_seconds_bucket"
               and dict(k[1]).get("operation") == "createOrder"]
    assert buckets and any(dict(k[1])["le"] == "+Inf" for k in buckets)


@pytest.mark.django_db
def test_orders_are_counted_by_status_in_one_query(client, catalog, django_assert_max_num_queries):
    for _ in range(3):
        assert client.post("/channelManager", payloads.order_body(), format="json").status_code == 202
    Order.objects.filter(pk=Order.objects.order_by("pk").first().pk).update(status=OrderStatus.ISSUED)
    # Orders by status and the queue (2), and the readiness checks (at most 7, see ReadinessCollector).
    with django_assert_max_num_queries(2 + 7):
        samples = scrape()
    expected = {status: Order.objects.filter(status=status).count() for status in OrderStatus.values}
    assert expected[OrderStatus.ISSUED] == 1
    for status in OrderStatus.values:
        assert value(samples, "cm_orders", status=status) == expected[status]
    assert value(samples, "cm_metrics_database_up") == 1


@pytest.mark.django_db
def test_queue_depth_and_the_oldest_waiting_task_are_shown():
    OrmQ.objects.all().delete()
    now = timezone.now()
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now - dt.timedelta(seconds=90))
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now - dt.timedelta(seconds=5))
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now + dt.timedelta(seconds=60))
    OrmQ.objects.create(key=settings.WEBHOOK_QUEUE, payload="x", lock=now - dt.timedelta(seconds=30))
    samples = scrape()
    assert value(samples, "cm_queue_tasks", queue="issuance", state="waiting") == 2
    assert value(samples, "cm_queue_tasks", queue="issuance", state="running") == 1
    assert 90 <= value(samples, "cm_queue_oldest_age_seconds", queue="issuance") < 120
    assert value(samples, "cm_queue_tasks", queue="webhooks", state="waiting") == 1
    assert value(samples, "cm_queue_tasks", queue="webhooks", state="running") == 0
    assert 30 <= value(samples, "cm_queue_oldest_age_seconds", queue="webhooks") < 60


@pytest.mark.django_db
def test_a_scrape_without_the_database_still_answers_with_the_process_metrics():
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("gone")):
        response = Client().get("/metrics")
    assert response.status_code == 200
    samples = parse(response.content.decode())
    assert value(samples, "cm_metrics_database_up") == 0
    assert not any(name == "cm_orders" for name, _ in samples)
    assert any(name == "cm_http_request_duration_seconds_count" for name, _ in samples)


@pytest.mark.django_db
def test_issuance_duration_is_recorded_by_result(client, catalog):
    from channel_manager.orders.tasks import issue_order_task

    before = scrape()
    response = client.post("/channelManager", payloads.order_body(), format="json")  # no commit: not queued
    order = Order.objects.get(order_id=response.json()["orderId"])
    assert issue_order_task(order.pk) == OrderStatus.ISSUED
    assert issue_order_task(order.pk) is None  # settled already: nothing to do
    after = scrape()
    name = "cm_issuance_duration_seconds_count"
    assert value(after, name, result="Issued") - value(before, name, result="Issued") == 1
    assert value(after, name, result="none") - value(before, name, result="none") == 1


@pytest.mark.django_db
def test_webhook_delivery_outcomes_are_counted(partner, settings, django_capture_on_commit_callbacks):
    from notifications import delivery

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver = Receiver()
    try:
        subscription = SubscriptionFactory(partner=partner, url=receiver.url())
        before = scrape()
        receiver.answer((200, {}, b"ok"), (500, {}, b"no"), (410, {}, b"gone"))
        with mock.patch("notifications.services.async_task"):
            with django_capture_on_commit_callbacks(execute=True):
                events = [
                    publish_event(event_type="ota_cm_order_processed", partner_pk=partner.pk, subject_id=f"s-{i}",
                                  payload={"i": i})
                    for i in range(3)
                ]
        # The first event's task sends its delivery, then the partner's other due ones.
        states = [delivery.deliver_event(event_pk=event.pk) for event in events]
        assert states == [3, 0, 0]
        after = scrape()
    finally:
        receiver.stop()
    subscription.refresh_from_db()
    assert not subscription.active
    grew = {
        outcome: value(after, "cm_webhook_deliveries_total", outcome=outcome)
        - value(before, "cm_webhook_deliveries_total", outcome=outcome)
        for outcome in delivery_metrics.DELIVERY_OUTCOMES
    }
    assert grew == {"delivered": 1, "retry": 1, "disabled": 1, "failed": 0}
    assert events[0].deliveries.get().state == DeliveryState.DELIVERED


# ---- several processes: gunicorn with channel_manager/deploy/gunicorn.conf.py ------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_under_gunicorn_every_scrape_sums_all_worker_processes(tmp_path):
    from tests.test_worker_e2e import worker_database_url

    if connection.vendor != "postgresql":
        pytest.fail("gunicorn shares the test database over PostgreSQL (make test provides it)")
    Order.objects.all().delete()
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = dict(os.environ)
    env.update(
        CM_DEV="1", DATABASE_URL=worker_database_url(), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="3", GUNICORN_THREADS="2", METRICS_TOKEN="",
        LOG_FORMAT="json", PYTHONUNBUFFERED="1",
    )
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "channel_manager/deploy/gunicorn.conf.py"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # Probed on /metrics, not /healthz: a probe that timed out here may still be
                # served later, and must not add to the healthz count asserted below.
                if get(f"{base}/metrics")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        while len(worker_pids(server.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(60):  # over fresh connections: spread over the workers
            assert get(f"{base}/healthz")[0] == 200

        def healthz_count(text: str) -> float:
            return value(parse(text), "cm_http_request_duration_seconds_count", operation="healthz", status="200")

        for _ in range(6):  # whichever worker answers, it shows the sum of all of them
            status, text = get(f"{base}/metrics")
            assert status == 200, text
            assert healthz_count(text) == 60
        # A worker that answered ends (gunicorn recycles them) and is replaced; what it counted stays.
        served = {int(p.stem.split("_")[1]) for p in metrics_dir.glob("histogram_*.db") if p.stem[10:].isdigit()}
        victim = next(pid for pid in worker_pids(server.pid) if pid in served)
        os.kill(victim, signal.SIGTERM)
        while victim in worker_pids(server.pid) or len(worker_pids(server.pid)) < 3:
            assert time.monotonic() < deadline + 30
            time.sleep(0.1)
        for _ in range(3):
            status, text = get(f"{base}/metrics")
            assert healthz_count(text) == 60
        assert (metrics_dir / "histogram_archive.db").exists()
        assert not (metrics_dir / f"histogram_{victim}.db").exists()

        # Another process on the machine (a qcluster worker) records into the same directory.
        script = "from channel_manager.orders import metrics; metrics.observe_issuance(result='Issued', seconds=0.3)"
        subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=60)
        samples = parse(get(f"{base}/metrics")[1])
        assert value(samples, "cm_issuance_duration_seconds_count", result="Issued") == 1
        assert value(samples, "cm_orders", status="Submitted") == 0
        assert value(samples, "cm_metrics_database_up") == 1
        assert get(f"{base}/readyz")[0] in (200, 503)  # answers; readiness itself is tested elsewhere
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    text = (tmp_path / "gunicorn.log").read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), text[-2000:]
