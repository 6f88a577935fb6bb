"""Structured logs: JSON lines with the request id, one access line per request, the request id
carried into the tasks a request causes, and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from unittest import mock

import pytest
from django.test import Client
from django.utils.module_loading import import_string
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from rest_framework.test import APIClient

from channel_manager.kernel.logs import (
    ContextFilter,
    JsonFormatter,
    PlainFormatter,
    RequestContextMiddleware,
    current_request_id,
    log_context,
    loggable_path,
    redact,
    task_context,
)
from channel_manager.orders import scheduling
from channel_manager.orders.models import OrderStatus
from tests import payloads
from tests.test_notifications_delivery import Receiver

REQUEST_ID = "lifecycle-req.1:A_b"


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict]:
        lines = [line for line in self.text.splitlines() if line.strip()]
        return [json.loads(line) for line in lines]  # every line is one JSON object

    def where(self, **fields) -> list[dict]:
        return [r for r in self.records() if all(r.get(k) == v for k, v in fields.items())]


@pytest.fixture
def json_logs():
    """Log records as production writes them: through ContextFilter and JsonFormatter."""
    captured = Captured()
    handler = logging.StreamHandler(captured.stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield captured
    root.removeHandler(handler)


def run_queued_tasks() -> list[dict]:
    """Do what a qcluster worker does with each queued task (in queue order), until none is left."""
    ran = []
    while (row := OrmQ.objects.order_by("id").first()) is not None:
        task = SignedPackage.loads(row.payload)
        row.delete()
        import_string(task["func"])(*task["args"], **task["kwargs"])
        ran.append(task)
    return ran


# ---- a whole order, end to end ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_logs_of_a_whole_order_lifecycle_hold_the_request_id_and_no_secret(
    json_logs, catalog, partner_and_key, settings
):
    partner, api_key = partner_and_key
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    OrmQ.objects.all().delete()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    receiver = Receiver()
    try:
        subscribed = api.post("/notifications/subscriptions", {"eventType": "ota_cm_order_processed",
                                                               "url": receiver.url()}, format="json")
        assert subscribed.status_code == 201, subscribed.content
        webhook_secret = subscribed.json()["secret"]

        body = payloads.order_body(paymentReference=None)
        created = api.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="idem-lifecycle-1",
                           HTTP_X_REQUEST_ID=REQUEST_ID)
        assert created.status_code == 202, created.content
        assert created["X-Request-Id"] == REQUEST_ID
        order_id = created.json()["orderId"]
        replayed = api.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="idem-lifecycle-1")
        assert replayed["Idempotent-Replayed"] == "true"
        assert re.fullmatch(r"[0-9a-f]{32}", replayed["X-Request-Id"])  # its own id, not the stored one

        issuance, delivery = run_queued_tasks()  # the issuance queues its event's delivery
        assert issuance["func"] == scheduling.ISSUE_DUE_TASK
        assert delivery["func"] == "notifications.tasks.deliver_event_task"
        assert issuance["kwargs"] == {"request_id": REQUEST_ID}
        assert delivery["kwargs"] == {"request_id": REQUEST_ID}
        assert len(receiver.received) == 1

        order = api.get(f"/channelManager/{order_id}").json()
        assert order["status"] == OrderStatus.DRAFT
        manifest_url = order["items"][0]["wallets"][0]["manifestUrl"]
        manifest_path = "/" + manifest_url.split("/", 3)[3]
        token = manifest_path.rstrip("/").rsplit("/", 1)[1]
        assert Client().get(manifest_path, HTTP_ACCEPT="application/json").status_code == 200
        assert Client().get(f"/wallets/{token}x").status_code == 404  # Django logs "Not Found: <path>"

        reference = body["sellToOrderReference"]
        found = api.get(f"/channelManager?sellToOrderReference={reference}&status=Draft")
        assert found.json()["results"][0]["orderId"] == order_id
        confirmed = api.post(f"/channelManager/{order_id}/confirm", {"paymentReference": "PAY-1"}, format="json")
        assert confirmed.json()["status"] == OrderStatus.ISSUED
        assert api.delete(f"/channelManager/{order_id}").json()["status"] == OrderStatus.CANCELLED
        wrong_key = Client().get("/channelManager", HTTP_AUTHORIZATION=f"Bearer {api_key}x")
        assert wrong_key.status_code == 401
    finally:
        receiver.stop()

    text = json_logs.text
    records = json_logs.records()
    for secret in (api_key, webhook_secret, token, token + "x", reference):
        assert secret not in text, secret
    assert "?" not in "".join(r.get("path", "") for r in records)

    # One access line per request, with what it did, who asked and how long it took.
    access = json_logs.where(logger="channel_manager.access")
    assert len(access) == 10
    create = json_logs.where(logger="channel_manager.access", request_id=REQUEST_ID)
    assert len(create) == 1
    assert create[0] | {"duration_ms": 0, "timestamp": "", "host": "", "pid": 0} == {
        "timestamp": "", "level": "INFO", "logger": "channel_manager.access",
        "message": "POST /channelManager 202", "request_id": REQUEST_ID, "partner_id": "acme-travel",
        "operation": "createOrder", "duration_ms": 0, "method": "POST", "path": "/channelManager", "status": 202,
        "host": "", "pid": 0,
    }
    assert isinstance(create[0]["duration_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", create[0]["timestamp"])
    by_operation = {r["operation"]: r for r in access}
    assert by_operation["findOrders"]["path"] == "/channelManager"
    assert by_operation["confirmOrder"]["order_id"] == order_id
    assert by_operation["deleteOrder"]["partner_id"] == "acme-travel"
    assert by_operation["wallet-manifest"]["path"] == "/wallets/[redacted]"
    assert "partner_id" not in by_operation["wallet-manifest"]
    assert all(r["request_id"] for r in access)

    # The tasks the request caused log under its request id.
    issued = json_logs.where(logger="channel_manager.orders.issuance", request_id=REQUEST_ID)
    assert any(r["message"].endswith("settled Draft") and r["order_id"] == order_id for r in issued)
    ended = [r for r in issued if "issuance ended" in r["message"]]
    assert ended and ended[0]["operation"] == "task:issue_due_orders" and ended[0]["duration_ms"] >= 0
    assert ended[0]["order_id"] == order_id
    delivered = json_logs.where(logger="notifications.delivery", request_id=REQUEST_ID)
    assert delivered and "delivered" in delivered[0]["message"]
    warned = {r["message"] for r in records if r["logger"] == "django.request"}
    assert "Not Found: /wallets/[redacted]" in warned
    assert "Unauthorized: /channelManager" in warned


# ---- the request id -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["", "has space", "x" * 129, "semi;colon", "ümlaut", "a/b"])
def test_an_unusable_request_id_is_replaced_by_a_fresh_one(given, json_logs):
    response = Client().get("/channelManager", HTTP_X_REQUEST_ID=given)
    assert response.status_code == 401
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-Id"])
    assert json_logs.where(logger="channel_manager.access")[0]["request_id"] == response["X-Request-Id"]


@pytest.mark.django_db
@pytest.mark.parametrize("given", ["a", "abc.DEF_1:2-3", "x" * 128, "0f9c7a1e-5b1d-4c47-9d0e-2b5c6f9a1d33"])
def test_a_valid_request_id_is_kept_and_echoed_on_every_response(given):
    for path in ("/healthz", "/channelManager", "/no-such-page", "/wallets/nope"):
        assert Client().get(path, HTTP_X_REQUEST_ID=given)["X-Request-Id"] == given


def test_the_request_id_lives_only_as_long_as_the_request():
    seen = []
    middleware = RequestContextMiddleware(lambda request: seen.append(current_request_id()) or _response())
    from django.test import RequestFactory

    middleware(RequestFactory().get("/healthz", HTTP_X_REQUEST_ID="inside"))
    assert seen == ["inside"]
    assert current_request_id() is None


def _response():
    from django.http import HttpResponse

    return HttpResponse("ok")


@pytest.mark.django_db
def test_queued_tasks_carry_the_request_id_of_the_request_that_queued_them():
    with mock.patch("channel_manager.orders.scheduling.async_task") as async_task:
        with log_context(request_id="req-7"):
            assert scheduling.kick(force=True)
        assert scheduling.kick(force=True)
    first, second = async_task.call_args_list
    assert first.kwargs["request_id"] == "req-7"
    assert "request_id" not in second.kwargs  # nothing to carry: the call stays as it was

    with mock.patch("notifications.services.async_task") as async_task:
        from notifications.services import enqueue_delivery

        with task_context(request_id="req-8", operation="task:issue_order"):
            enqueue_delivery(5)
    assert async_task.call_args.kwargs["request_id"] == "req-8"


def test_a_task_without_a_request_id_gets_its_own():
    with task_context(request_id=None, operation="task:x") as context:
        assert re.fullmatch(r"[0-9a-f]{32}", context["request_id"])
    with task_context(request_id="bad id", operation="task:x") as context:
        assert context["request_id"] != "bad id"


# ---- formatting and redaction -------------------------------------------------------------------


def test_paths_and_messages_are_redacted():
    assert loggable_path("/wallets/AbC123_-x") == "/wallets/[redacted]"
    assert loggable_path("/wallets/AbC123/pass.pkpass") == "/wallets/[redacted]/pass.pkpass"
    assert loggable_path("/channelManager/abc") == "/channelManager/abc"
    assert redact("Authorization: Bearer cmk_abcDEF123") == "Authorization: Bearer [redacted]"
    assert redact("secret whsec_abc-DEF_1 leaked") == "secret whsec_[redacted] leaked"
    assert redact("key cmk_xyz in text") == "key cmk_[redacted] in text"


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("channel_manager.test", logging.WARNING, __file__, 1, message, args, exc_info)
    for key, val in extra.items():
        setattr(rec, key, val)
    ContextFilter().filter(rec)
    return rec


def test_json_lines_carry_the_exception_text_redacted():
    try:
        raise ValueError("GET /wallets/SeCrEtToKeN failed with Bearer cmk_live_key")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    with log_context(request_id="r-1", order_id=str(uuid.UUID(int=1))):
        line = JsonFormatter().format(record("boom %s", "whsec_s3cr3t", exc_info=exc_info))
    document = json.loads(line)
    assert "\n" not in line
    assert document["message"] == "boom whsec_[redacted]"
    assert document["request_id"] == "r-1" and document["order_id"] == str(uuid.UUID(int=1))
    assert "ValueError" in document["exception"]
    assert "SeCrEtToKeN" not in line and "cmk_live_key" not in line


def test_plain_lines_show_the_context_for_development():
    with log_context(request_id="r-2", partner_id="acme-travel"):
        line = PlainFormatter().format(record("hello %s", "world", duration_ms=1.5))
    assert line.endswith("WARNING channel_manager.test hello world "
                         "[request_id=r-2 partner_id=acme-travel duration_ms=1.5]")
