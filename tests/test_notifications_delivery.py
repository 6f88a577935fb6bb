"""Webhook delivery against a real HTTP receiver on 127.0.0.1: the outbox rows, signatures,
retries, 410, redirects, timeouts, partner isolation, rollbacks, claims and the admin."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from notifications import delivery, services, tasks
from notifications.delivery import DEFAULT_RETRY_DELAYS, Outcome, claim_delivery, deliver, deliver_due, record_outcome
from notifications.models import Delivery, DeliveryAttempt, DeliveryState, Event, Subscription
from notifications.services import publish_event
from notifications.signing import verify_signature
from tests.factories import PartnerFactory, SubscriptionFactory

ORDER_PROCESSED = "ota_cm_order_processed"


# ---- a real receiver ----------------------------------------------------------------------


class Received:
    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path, self.headers, self.body = path, headers, body

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server in a thread. `answer(path)` says what to answer: (status, headers, body),
    or a callable taking the handler (to sleep, trickle, ...). It answers 200 by default."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.received: list[Received] = []
        self.script: list = []
        self.default = (200, {}, b"thanks")
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                if callable(answer):
                    answer(self)
                    return
                status, headers, payload = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST  # a followed redirect would show up here  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.server.server_address[1]}{path}"

    def answer(self, *answers) -> None:
        self.script.extend(answers)

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def event_ids(self) -> list[str]:
        return [r.json["eventId"] for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dev(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings


def publish(partner, subject: str | None = None, **order) -> Event:
    subject = subject or str(uuid.uuid4())
    return publish_event(
        event_type=ORDER_PROCESSED, partner_pk=partner.pk, subject_id=subject,
        payload={"order": {"orderId": subject, "status": "Issued", **order}},
    )


def make_due(**filters) -> None:
    """Time passes: whatever waits for its next attempt (or a claim's expiry) is due now, and
    the circuit breakers' cool-downs (shorter than the later retry delays) are over."""
    past = timezone.now() - dt.timedelta(seconds=1)
    Delivery.objects.filter(state=DeliveryState.PENDING, **filters).update(next_attempt_at=past)
    Subscription.objects.filter(breaker_open_until__isnull=False).update(breaker_open_until=past)


def reload(obj):
    obj.refresh_from_db()
    return obj


# ---- the outbox rows ------------------------------------------------------------------------


@pytest.mark.django_db
def test_publishing_without_an_active_subscription_records_a_none_event_and_queues_nothing(
    partner, django_capture_on_commit_callbacks
):
    SubscriptionFactory(partner=partner, active=False)
    SubscriptionFactory(partner=partner, event_type="something_else")
    with mock.patch("notifications.services.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            event = publish(partner)
    assert reload(event).delivery_state == DeliveryState.NONE
    assert not Delivery.objects.exists()
    async_task.assert_not_called()


@pytest.mark.django_db
def test_publishing_writes_one_pending_delivery_per_active_subscription_and_queues_after_commit(
    partner, django_capture_on_commit_callbacks
):
    subscriptions = [SubscriptionFactory(partner=partner) for _ in range(2)]
    SubscriptionFactory(partner=partner, active=False)
    SubscriptionFactory(partner=PartnerFactory())
    with mock.patch("notifications.services.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            event = publish(partner)
        async_task.assert_not_called()  # not before the commit
        for callback in callbacks:
            callback()

    assert reload(event).delivery_state == DeliveryState.PENDING
    deliveries = list(event.deliveries.order_by("subscription_id"))
    assert [d.subscription_id for d in deliveries] == [s.pk for s in subscriptions]
    assert all(d.state == DeliveryState.PENDING and d.next_attempt_at <= timezone.now() for d in deliveries)
    async_task.assert_called_once_with(
        "notifications.tasks.deliver_event_task", event.pk, group="webhooks", task_name=f"deliver-event-{event.pk}",
        cluster="webhooks",
    )


@pytest.mark.django_db
def test_a_failed_enqueue_after_commit_is_logged_and_the_sweep_still_delivers(
    partner, dev, receiver, django_capture_on_commit_callbacks, caplog
):
    SubscriptionFactory(partner=partner, url=receiver.url())
    with mock.patch("notifications.services.async_task", side_effect=ConnectionError("broker gone")):
        with django_capture_on_commit_callbacks(execute=True):
            event = publish(partner)  # the caller (issuance) is not disturbed
    assert "broker gone" in caplog.text

    assert tasks.deliver_due() == 1
    assert receiver.event_ids() == [str(event.event_id)]


@pytest.mark.django_db
def test_a_rollback_announces_nothing(partner, dev, receiver, django_capture_on_commit_callbacks):
    SubscriptionFactory(partner=partner, url=receiver.url())
    with mock.patch("notifications.services.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(RuntimeError), transaction.atomic():
                publish(partner)
                raise RuntimeError("the settle failed")
    assert callbacks == []
    async_task.assert_not_called()
    assert not Event.objects.exists() and not Delivery.objects.exists()
    make_due()
    assert deliver_due() == 0
    assert receiver.received == []


# ---- a delivery -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_receiver_gets_the_event_signed_with_the_subscription_secret(partner, dev, receiver):
    subscription = SubscriptionFactory(partner=partner, url=receiver.url("/cm/hook?source=cm"))
    event = publish(partner, "order-1", totalAmount="99.00")

    assert tasks.deliver_event_task(event.pk) == 1

    (got,) = receiver.received
    assert got.path == "/cm/hook?source=cm"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["CM-Event-Id"] == str(event.event_id)
    assert got.headers["User-Agent"].startswith("OTA-Channel-Manager")
    assert got.json == {
        "eventId": str(event.event_id),
        "eventType": ORDER_PROCESSED,
        "createdAt": event.created_at.isoformat().replace("+00:00", "Z"),
        "livemode": True,
        "data": {"order": {"orderId": "order-1", "status": "Issued", "totalAmount": "99.00"}},
    }
    # Recompute the signature as a receiver would: HMAC-SHA256(secret, "<t>." + raw body).
    params = dict(part.split("=", 1) for part in got.headers["CM-Signature"].split(","))
    assert set(params) == {"t", "v1"}
    assert abs(int(params["t"]) - time.time()) < 60
    expected = hmac.new(
        subscription.secret.encode(), params["t"].encode() + b"." + got.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(params["v1"], expected)
    assert verify_signature(secret=subscription.secret, body=got.body, header=got.headers["CM-Signature"])
    assert not verify_signature(secret=subscription.secret, body=got.body + b" ", header=got.headers["CM-Signature"])
    assert not verify_signature(secret="whsec_other", body=got.body, header=got.headers["CM-Signature"])

    assert reload(event).delivery_state == DeliveryState.DELIVERED
    (done,) = event.deliveries.all()
    assert done.state == DeliveryState.DELIVERED and done.delivered_at and done.last_status_code == 200


@pytest.fixture
def certificate(tmp_path) -> tuple[str, str]:
    """A self-signed certificate for the name localhost."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed to make a test certificate (make test provides it)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture
def tls_receiver(certificate, monkeypatch):
    r = Receiver(tls=certificate)
    monkeypatch.setattr(delivery, "tls_context", lambda: ssl.create_default_context(cafile=certificate[0]))
    yield r
    r.stop()


@pytest.mark.django_db
def test_https_receivers_get_the_event_over_a_verified_connection(partner, dev, tls_receiver):
    SubscriptionFactory(partner=partner, url=tls_receiver.url(host="localhost"))
    event = publish(partner)

    deliver_due()

    (got,) = tls_receiver.received
    assert got.json["eventId"] == str(event.event_id)
    assert got.headers["Host"] == f"localhost:{tls_receiver.server.server_address[1]}"
    assert reload(event).delivery_state == DeliveryState.DELIVERED


@pytest.mark.django_db
def test_a_certificate_for_another_name_is_refused(partner, dev, tls_receiver):
    SubscriptionFactory(partner=partner, url=tls_receiver.url(host="127.0.0.1"))  # the cert names localhost
    event = publish(partner)

    deliver_due()

    assert tls_receiver.received == []
    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "certificate" in attempt.error.lower()
    assert reload(event).delivery_state == DeliveryState.PENDING


@pytest.mark.django_db
def test_every_attempt_is_recorded(partner, dev, receiver):
    SubscriptionFactory(partner=partner, url=receiver.url())
    receiver.answer((503, {}, "é".encode() * 3000), (201, {}, b"created"))
    event = publish(partner)

    deliver_due()
    make_due()
    deliver_due()

    first, second = DeliveryAttempt.objects.filter(delivery__event=event).order_by("at", "id")
    assert (first.status_code, first.error) == (503, "HTTP 503")
    assert len(first.response_excerpt) == 1000 and first.response_excerpt.startswith("éé")
    assert (second.status_code, second.error, second.response_excerpt) == (201, "", "created")
    assert all(a.duration_ms >= 0 for a in (first, second)) and first.at <= second.at
    assert reload(event).delivery_state == DeliveryState.DELIVERED


@pytest.mark.django_db
def test_a_receiver_that_fails_then_recovers_gets_the_event_once_delivered_never_again(partner, dev, receiver):
    SubscriptionFactory(partner=partner, url=receiver.url())
    receiver.answer((500, {}, b"oops"))
    event = publish(partner)

    before = timezone.now()
    assert deliver_due() == 1
    (pending,) = event.deliveries.all()
    assert pending.state == DeliveryState.PENDING and pending.attempt_count == 1
    assert pending.next_attempt_at >= before + dt.timedelta(seconds=DEFAULT_RETRY_DELAYS[1])
    assert reload(event).delivery_state == DeliveryState.PENDING
    assert deliver_due() == 0, "not due yet"

    make_due()
    assert deliver_due() == 1
    assert reload(pending).state == DeliveryState.DELIVERED
    assert reload(event).delivery_state == DeliveryState.DELIVERED
    assert receiver.event_ids() == [str(event.event_id)] * 2

    # Delivered stays delivered: no sweep, task or direct call sends it again.
    Delivery.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now() - dt.timedelta(days=1))
    assert deliver_due() == 0
    assert tasks.deliver_event_task(event.pk) == 0
    assert deliver(delivery_pk=pending.pk) is None
    assert len(receiver.received) == 2


@pytest.mark.django_db
def test_the_retry_schedule_spans_a_day_and_ends_in_failed(partner, dev, receiver):
    receiver.default = (500, {}, b"down")
    SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)
    (d,) = event.deliveries.all()

    assert sum(DEFAULT_RETRY_DELAYS) >= 24 * 3600
    waits = []
    for _ in DEFAULT_RETRY_DELAYS:
        started = timezone.now()
        assert deliver_due() == 1
        d = reload(d)
        if d.state == DeliveryState.PENDING:
            waits.append(round((d.next_attempt_at - started).total_seconds()))
            make_due()
    assert waits == [pytest.approx(w, abs=2) for w in DEFAULT_RETRY_DELAYS[1:]]
    assert d.state == DeliveryState.FAILED and d.attempt_count == len(DEFAULT_RETRY_DELAYS)
    assert d.next_attempt_at is None
    assert reload(event).delivery_state == DeliveryState.FAILED
    assert DeliveryAttempt.objects.filter(delivery=d).count() == len(DEFAULT_RETRY_DELAYS)
    Delivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert deliver_due() == 0
    assert len(receiver.received) == len(DEFAULT_RETRY_DELAYS)


@pytest.mark.django_db
def test_a_shorter_retry_schedule_from_settings_ends_in_failed_after_its_last_attempt(partner, dev, receiver):
    dev.WEBHOOK_RETRY_DELAYS = (0, 0, 0)
    receiver.default = (502, {}, b"")
    SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)

    assert deliver_due() == 3  # each retry is due at once, so one sweep makes all three attempts
    assert deliver_due() == 0
    assert reload(event).delivery_state == DeliveryState.FAILED
    assert len(receiver.received) == 3


@pytest.mark.django_db
def test_410_gone_switches_the_subscription_off_and_fails_its_pending_deliveries(partner, dev, receiver):
    gone = SubscriptionFactory(partner=partner, url=receiver.url("/gone"))
    fine = SubscriptionFactory(partner=partner, url=receiver.url("/fine"))
    receiver.answer((410, {}, b"gone"))
    first = publish(partner)
    second = publish(partner)

    deliver(delivery_pk=first.deliveries.get(subscription=gone).pk)

    gone = reload(gone)
    assert not gone.active and "410" in gone.disabled_reason
    assert set(Delivery.objects.filter(subscription=gone).values_list("state", flat=True)) == {DeliveryState.FAILED}
    assert reload(first).delivery_state == reload(second).delivery_state == DeliveryState.FAILED
    deliver_due()
    assert receiver.paths() == ["/gone", "/fine", "/fine"]
    assert set(Delivery.objects.filter(subscription=fine).values_list("state", flat=True)) == {"delivered"}
    third = publish(partner)
    assert list(third.deliveries.values_list("subscription", flat=True)) == [fine.pk]


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_counts_as_a_failure(partner, dev, receiver):
    SubscriptionFactory(partner=partner, url=receiver.url("/old"))
    receiver.answer((301, {"Location": receiver.url("/new")}, b""), (307, {"Location": "/new"}, b""))
    event = publish(partner)

    deliver_due()
    make_due()
    deliver_due()

    assert receiver.paths() == ["/old", "/old"]
    (d,) = event.deliveries.all()
    assert d.state == DeliveryState.PENDING and d.last_status_code == 307
    errors = list(DeliveryAttempt.objects.values_list("error", flat=True))
    assert all("redirect" in e and "not followed" in e for e in errors), errors


@pytest.mark.django_db
def test_no_answer_within_the_timeout_is_a_failure(partner, dev, receiver):
    dev.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.answer(lambda handler: time.sleep(2))
    SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)

    started = time.monotonic()
    deliver_due()
    assert time.monotonic() - started < 1.8

    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "no answer within 0.5 s" in attempt.error
    assert reload(event).delivery_state == DeliveryState.PENDING


@pytest.mark.django_db
def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline(partner, dev, receiver):
    dev.WEBHOOK_TIMEOUT_SECONDS = 0.6

    def trickle(handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(40):  # a header byte every 0.1 s: no single read ever times out
            try:
                handler.wfile.write(b"X")
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)

    receiver.answer(trickle)
    SubscriptionFactory(partner=partner, url=receiver.url())
    publish(partner)

    started = time.monotonic()
    deliver_due()
    assert time.monotonic() - started < 2

    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "no answer within" in attempt.error


@pytest.mark.django_db
def test_a_refused_connection_is_a_failure(partner, dev):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    SubscriptionFactory(partner=partner, url=f"http://127.0.0.1:{port}/hook")
    event = publish(partner)

    deliver_due()

    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "Connection" in attempt.error
    assert reload(event).delivery_state == DeliveryState.PENDING


@pytest.mark.django_db
def test_events_of_one_partner_never_reach_another_partners_subscription(partner, dev, receiver):
    other = PartnerFactory(partner_id="globe-trips")
    SubscriptionFactory(partner=partner, url=receiver.url("/acme"))
    SubscriptionFactory(partner=other, url=receiver.url("/globe"))

    mine = publish(partner)
    theirs = publish(other)
    deliver_due()

    by_path = {r.path: r.json["eventId"] for r in receiver.received}
    assert by_path == {"/acme": str(mine.event_id), "/globe": str(theirs.event_id)}


@pytest.mark.django_db
def test_a_private_address_is_refused_at_delivery_time_in_production(
    partner, settings, receiver, monkeypatch, caplog
):
    """The host resolved to a public address when the partner subscribed; now it points at us.
    The attempt says it was not sent; the address it resolved to is in the log only."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    port = receiver.server.server_address[1]
    SubscriptionFactory(partner=partner, url=f"https://rebound.partner.example:{port}/hook")
    monkeypatch.setattr(
        "notifications.targets.socket.getaddrinfo",
        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))],
    )
    event = publish(partner)

    deliver_due()

    assert receiver.received == []
    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "not sent" in attempt.error and "127.0.0.1" not in attempt.error
    assert any("127.0.0.1" in record.getMessage() for record in caplog.records)
    assert reload(event).delivery_state == DeliveryState.PENDING


@pytest.mark.django_db
def test_a_subscription_switched_off_after_publishing_gets_nothing(partner, dev, receiver):
    subscription = SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)
    Subscription.objects.filter(pk=subscription.pk).update(active=False)  # behind the services' back

    deliver_due()

    assert receiver.received == []
    assert event.deliveries.get().state == DeliveryState.FAILED
    assert reload(event).delivery_state == DeliveryState.FAILED


# ---- claims ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_claimed_delivery_is_not_claimed_again_until_its_claim_expires(partner, dev, receiver):
    SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)
    (d,) = event.deliveries.all()

    claim = claim_delivery(delivery_pk=d.pk)  # ... and the worker dies before sending
    assert claim is not None
    assert claim_delivery(delivery_pk=d.pk) is None
    assert deliver_due() == 0
    assert reload(d).next_attempt_at > timezone.now() + dt.timedelta(seconds=30)

    make_due()  # the claim has expired
    assert deliver_due() == 1
    assert receiver.event_ids() == [str(event.event_id)]
    assert reload(d).state == DeliveryState.DELIVERED

    # The dead worker's late failure does not undo the delivery.
    record_outcome(claim, Outcome(None, "late", "", 1))
    assert reload(d).state == DeliveryState.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_one_delivery_at_the_same_time(partner, dev, receiver):
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL row locks (SKIP LOCKED) and a database shared between threads")
    gate = threading.Event()

    def slow_ok(handler) -> None:
        gate.wait(5)
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    receiver.default = slow_ok
    SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)
    (d,) = event.deliveries.all()
    results: list = []

    def worker(call: Callable[[], object]) -> None:
        try:
            results.append(call())
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(lambda: deliver(delivery_pk=d.pk),)),
        threading.Thread(target=worker, args=(lambda: deliver_due(),)),
        threading.Thread(target=worker, args=(lambda: tasks.deliver_event_task(event.pk),)),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the others have had their chance to claim
    gate.set()
    for t in threads:
        t.join(10)

    assert len(receiver.received) == 1
    assert reload(d).state == DeliveryState.DELIVERED
    assert len(results) == 3
    assert sum(r in ("delivered", 1) for r in results) == 1  # one sent; the others found it claimed


# ---- redelivery and the schedule -----------------------------------------------------------


@pytest.mark.django_db
def test_staff_redelivery_sends_again_now_also_to_subscriptions_created_later(
    partner, dev, receiver, django_capture_on_commit_callbacks
):
    early = SubscriptionFactory(partner=partner, url=receiver.url("/early"))
    event = publish(partner)
    deliver_due()
    late = SubscriptionFactory(partner=partner, url=receiver.url("/late"))

    with mock.patch("notifications.services.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            assert services.redeliver_events(event_pks=[event.pk]) == 2
    async_task.assert_called_once()
    assert reload(event).delivery_state == DeliveryState.PENDING
    tasks.deliver_event_task(event.pk)

    assert sorted(receiver.paths()) == ["/early", "/early", "/late"]
    assert {d.subscription_id: d.state for d in event.deliveries.all()} == {
        early.pk: DeliveryState.DELIVERED, late.pk: DeliveryState.DELIVERED
    }
    assert reload(event).delivery_state == DeliveryState.DELIVERED


@pytest.mark.django_db
def test_redelivering_a_failed_delivery_starts_a_fresh_schedule(partner, dev, receiver):
    dev.WEBHOOK_RETRY_DELAYS = (0,)
    receiver.answer((500, {}, b""))
    SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)
    deliver_due()
    (d,) = event.deliveries.all()
    assert d.state == DeliveryState.FAILED

    assert services.redeliver_deliveries(delivery_pks=[d.pk]) == 1
    assert reload(d).attempt_count == 0 and d.state == DeliveryState.PENDING
    deliver_due()

    assert reload(d).state == DeliveryState.DELIVERED
    assert reload(event).delivery_state == DeliveryState.DELIVERED
    assert DeliveryAttempt.objects.filter(delivery=d).count() == 2


@pytest.mark.django_db
def test_the_deliver_due_schedule_is_created_once(db):
    migration = importlib.import_module("notifications.migrations.0003_deliver_due_schedule")
    editor = mock.Mock(connection=connection)
    Schedule.objects.filter(name=tasks.DELIVER_DUE_SCHEDULE_NAME).delete()

    migration.create_deliver_due_schedule(django_apps, editor)
    migration.create_deliver_due_schedule(django_apps, editor)

    (schedule,) = Schedule.objects.filter(name="deliver-due-webhooks")
    assert schedule.func == "notifications.tasks.deliver_due" == tasks.DELIVER_DUE_TASK
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


@pytest.mark.django_db
def test_deliver_due_takes_a_bounded_batch(partner, dev, receiver):
    SubscriptionFactory(partner=partner, url=receiver.url())
    for _ in range(5):
        publish(partner)
    assert delivery.deliver_due(limit=2) == 2
    assert tasks.deliver_due() == 3
    assert len(receiver.received) == 5


# ---- admin ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_lists_and_redelivers(admin_client, partner, dev, receiver):
    subscription = SubscriptionFactory(partner=partner, url=receiver.url())
    event = publish(partner)
    deliver_due()
    (d,) = event.deliveries.all()

    listing = admin_client.get("/admin/notifications/subscription/")
    assert listing.status_code == 200 and subscription.secret.encode() not in listing.content
    for url in (
        "/admin/notifications/event/", f"/admin/notifications/event/{event.pk}/change/",
        "/admin/notifications/delivery/", f"/admin/notifications/delivery/{d.pk}/change/",
        f"/admin/notifications/subscription/{subscription.pk}/change/", "/admin/notifications/subscription/add/",
        f"/admin/notifications/event/?q={event.event_id}", "/admin/notifications/event/?delivery_state=delivered",
        f"/admin/notifications/subscription/?q={subscription.subscription_id}",
        "/admin/notifications/subscription/?q=127.0.0.1&active__exact=1", f"/admin/notifications/delivery/?q={d.pk}",
    ):
        assert admin_client.get(url).status_code == 200, url

    with mock.patch("notifications.services.async_task"):
        response = admin_client.post(
            "/admin/notifications/event/", {"action": "redeliver_now", "_selected_action": [event.pk]}
        )
    assert response.status_code == 302
    assert reload(d).state == DeliveryState.PENDING
    with mock.patch("notifications.services.async_task"):
        admin_client.post(
            "/admin/notifications/delivery/", {"action": "redeliver_now", "_selected_action": [d.pk]}
        )
    deliver_due()
    assert len(receiver.received) == 2

    admin_client.post(
        "/admin/notifications/subscription/", {"action": "switch_off", "_selected_action": [subscription.pk]}
    )
    assert not reload(subscription).active and "switched off by" in subscription.disabled_reason
    admin_client.post(
        "/admin/notifications/subscription/", {"action": "switch_on", "_selected_action": [subscription.pk]}
    )
    assert reload(subscription).active and subscription.disabled_reason == ""


@pytest.mark.django_db
def test_staff_add_subscriptions_through_the_admin_with_a_generated_secret(admin_client, partner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    refused = admin_client.post("/admin/notifications/subscription/add/", {
        "partner": partner.pk, "event_type": ORDER_PROCESSED, "url": "http://127.0.0.1:9/hook", "active": "on",
    })
    assert refused.status_code == 200 and not Subscription.objects.exists()

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    added = admin_client.post("/admin/notifications/subscription/add/", {
        "partner": partner.pk, "event_type": ORDER_PROCESSED, "url": "http://127.0.0.1:9/hook", "active": "on",
    })
    assert added.status_code == 302
    (subscription,) = Subscription.objects.all()
    assert subscription.secret.startswith("whsec_") and len(subscription.secret) > 40
