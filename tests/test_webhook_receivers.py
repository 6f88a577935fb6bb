"""The receiver examples that integrators copy (notifications/examples/), each run as a real
process that receives real deliveries: a subscription made through the API to its 127.0.0.1
URL, an order that settles, and notifications.delivery sending the event. Both answer 2xx,
deduplicate a redelivered eventId, and refuse a tampered body and an old timestamp with 4xx."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifications import delivery, services
from notifications.models import Delivery, DeliveryState, Event
from notifications.signing import signature_header
from notifications.targets import check_target
from tests import payloads
from tests.factories import submit_order
from tests.test_ops_metrics import free_port

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parent.parent / "notifications" / "examples"
MAX_LINES = 40


def command(language: str) -> list[str]:
    if language == "python":
        return [sys.executable, "-I", "-S", str(EXAMPLES / "receiver.py")]  # no site-packages: the standard library
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("Node.js is missing: `make test` installs Debian's nodejs")
    return [node, str(EXAMPLES / "receiver.js")]


class ExampleReceiver:
    """One example receiver on 127.0.0.1:port; what it printed is its log."""

    def __init__(self, language: str, *, secret: str, port: int, log_path: Path) -> None:
        self.log_path = log_path
        env = {"CM_WEBHOOK_SECRET": secret, "PATH": "/usr/bin:/bin"}
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [*command(language), str(port)], env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, self.output()
                time.sleep(0.1)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def handled(self, event_id: str) -> int:
        """How many times it did the work for this event."""
        return sum(line.startswith(f"handled {event_id} ") for line in self.output().splitlines())

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(params=["python", "node"])
def subscribed(request, client, settings, tmp_path):
    """A subscription made through the API to the example's URL, and the example receiving for
    it: (receiver, url, secret)."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/cm"
    response = client.post("/notifications/subscriptions", {"eventType": "ota_cm_order_processed", "url": url},
                           format="json")
    assert response.status_code == 201, response.content
    secret = response.json()["secret"]
    receiver = ExampleReceiver(request.param, secret=secret, port=port, log_path=tmp_path / "receiver.log")
    yield receiver, url, secret
    receiver.stop()


def settle_an_order(partner) -> Event:
    """An order issued as the API and the worker do it: ota_cm_order_processed, due for delivery."""
    submit_order(partner, payloads.order_body())
    return Event.objects.get(partner=partner)


def send(url: str, event: Event, body: bytes, signature: str) -> delivery.Outcome:
    """One POST by the delivery code itself, with the headers of a delivery."""
    headers = {"Content-Type": "application/json", "User-Agent": delivery.USER_AGENT,
               "CM-Event-Id": str(event.event_id), "CM-Event-Type": event.event_type, "CM-Signature": signature}
    return delivery.post(check_target(url), body, headers, timeout=10)


def test_the_examples_are_under_forty_lines():
    for name in ("receiver.py", "receiver.js"):
        assert len((EXAMPLES / name).read_text().splitlines()) < MAX_LINES, name


def test_an_example_acknowledges_a_real_delivery_and_does_a_redelivered_event_once(subscribed, partner, catalog):
    receiver, _, _ = subscribed
    event = settle_an_order(partner)

    assert delivery.deliver_due() == 1
    sent = Delivery.objects.get(event=event)
    assert (sent.state, sent.last_status_code) == (DeliveryState.DELIVERED, 200), sent.last_error
    assert receiver.handled(str(event.event_id)) == 1, receiver.output()

    services.redeliver_events(event_pks=[event.pk])  # as staff do from the admin: the same eventId again
    assert delivery.deliver_due() == 1
    attempts = list(sent.attempts.order_by("pk").values_list("status_code", "response_excerpt"))
    assert attempts == [(200, "ok"), (200, "duplicate")]
    assert receiver.handled(str(event.event_id)) == 1, receiver.output()


def test_an_example_refuses_a_tampered_body_and_an_old_timestamp(subscribed, partner, catalog):
    receiver, url, secret = subscribed
    event = settle_an_order(partner)
    body = services.body_bytes(event)
    tampered = body.replace(b'"status":"Issued"', b'"status":"Cancelled"')
    assert tampered != body

    assert send(url, event, tampered, signature_header(secret=secret, body=body)).status_code == 400
    stale = signature_header(secret=secret, body=body, timestamp=int(time.time()) - 600)
    assert send(url, event, body, stale).status_code == 400
    assert send(url, event, body, signature_header(secret="whsec_not-the-secret", body=body)).status_code == 400
    assert send(url, event, body, f"t={int(time.time())},v1={'é' * 64}").status_code == 400
    assert receiver.handled(str(event.event_id)) == 0, receiver.output()

    # The genuine delivery of the same event still goes through: a refusal remembers nothing.
    assert delivery.deliver_due() == 1
    assert Delivery.objects.get(event=event).state == DeliveryState.DELIVERED
    assert receiver.handled(str(event.event_id)) == 1, receiver.output()
