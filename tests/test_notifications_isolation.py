"""Isolation of webhook delivery (issue [2.2]): its own django-q2 queue, a short connect timeout,
a circuit breaker per subscription and a cap on a partner's deliveries in flight."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone
from django_q.models import OrmQ

from notifications import delivery
from notifications.delivery import deliver_due, in_flight
from notifications.models import Delivery, DeliveryAttempt, DeliveryState, Subscription
from notifications.targets import check_target
from tests.factories import PartnerFactory, SubscriptionFactory
from tests.test_notifications_delivery import publish, reload


@pytest.fixture
def dev(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_BREAKER_THRESHOLD = 3
    settings.WEBHOOK_BREAKER_COOLDOWN_SECONDS = 30
    settings.WEBHOOK_BREAKER_MAX_COOLDOWN_SECONDS = 900
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = 2
    return settings


def make_due() -> None:
    """Time passes for the deliveries only (not for the breakers' cool-downs)."""
    past = timezone.now() - dt.timedelta(seconds=1)
    Delivery.objects.filter(state=DeliveryState.PENDING).update(next_attempt_at=past)


# ---- the webhook queue --------------------------------------------------------------------------


@pytest.mark.django_db
def test_delivery_tasks_go_to_the_webhook_queue_never_to_the_issuance_queue(
    partner, dev, django_capture_on_commit_callbacks
):
    SubscriptionFactory(partner=partner)
    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        publish(partner)
    assert list(OrmQ.objects.values_list("key", flat=True)) == [settings.WEBHOOK_QUEUE] == ["webhooks"]
    assert settings.WEBHOOK_QUEUE != settings.Q_CLUSTER["name"]


# ---- the connect timeout ------------------------------------------------------------------------


def test_the_connect_has_its_own_shorter_deadline_then_the_exchange_gets_the_long_one(dev, receiver):
    target = check_target(receiver.url())
    real = socket.create_connection
    seen: list[float] = []
    sockets: list[socket.socket] = []

    def create_connection(address, timeout, *args, **kwargs):
        seen.append(timeout)
        sockets.append(real(address, timeout, *args, **kwargs))
        return sockets[-1]

    with mock.patch.object(delivery.socket, "create_connection", side_effect=create_connection):
        outcome = delivery.post(target, b"{}", {}, timeout=10, connect_timeout=3)
    assert outcome.delivered
    assert len(seen) == 1 and 2.9 < seen[0] <= 3
    assert sockets[0].gettimeout() == 10, "once connected, the exchange has the long deadline"


@pytest.mark.django_db
def test_a_connect_that_does_not_complete_fails_after_the_connect_timeout(partner, dev, receiver):
    dev.WEBHOOK_CONNECT_TIMEOUT_SECONDS = 0.4
    dev.WEBHOOK_TIMEOUT_SECONDS = 10
    SubscriptionFactory(partner=partner, url=receiver.url())
    publish(partner)
    seen: list[float] = []

    def unreachable(address, timeout, *args, **kwargs):
        seen.append(timeout)
        raise TimeoutError("timed out")

    with mock.patch.object(delivery.socket, "create_connection", side_effect=unreachable):
        assert deliver_due() == 1
    assert seen and max(seen) <= 0.4
    (attempt,) = DeliveryAttempt.objects.all()
    assert attempt.status_code is None
    assert attempt.error == "ConnectTimeout: no connection within 0.4 s"
    assert Delivery.objects.get().state == DeliveryState.PENDING  # retried later


def test_the_connect_timeout_is_never_longer_than_the_whole_exchange(settings):
    settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    assert delivery.connect_timeout_seconds() == 2
    settings.WEBHOOK_TIMEOUT_SECONDS = 10
    assert delivery.connect_timeout_seconds() == 3


# ---- the circuit breaker ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_breaker_opens_after_consecutive_failures_probes_once_and_closes_on_success(partner, dev, receiver):
    subscription = SubscriptionFactory(partner=partner, url=receiver.url())
    receiver.default = (503, {}, b"busy")
    events = [publish(partner) for _ in range(5)]

    # Three failures in a row (the threshold) open the breaker; nothing more is attempted.
    before = timezone.now()
    assert delivery.deliver_due(limit=3) == 3
    reload(subscription)
    assert subscription.consecutive_failures == 3
    assert before + dt.timedelta(seconds=29) < subscription.breaker_open_until <= timezone.now() + dt.timedelta(
        seconds=30
    )
    assert delivery.breaker_state(subscription) == "open"
    make_due()
    assert deliver_due() == 0
    assert len(receiver.received) == 3
    # Nothing is lost: every delivery is still pending, with its attempts untouched.
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.PENDING}
    assert sorted(Delivery.objects.values_list("attempt_count", flat=True)) == [0, 0, 1, 1, 1]

    # Cool-down over: half-open, one probe at a time.
    Subscription.objects.filter(pk=subscription.pk).update(breaker_open_until=timezone.now() - dt.timedelta(seconds=1))
    assert delivery.breaker_state(reload(subscription)) == "half-open"
    probe = delivery._claim(Delivery.objects.all())
    assert probe is not None
    assert delivery._claim(Delivery.objects.all()) is None, "a second probe while the first is in flight"
    # The probe fails: open again, for twice as long.
    assert delivery.send_claimed(probe) == DeliveryState.PENDING
    reload(subscription)
    assert subscription.consecutive_failures == 4
    assert subscription.breaker_open_until > timezone.now() + dt.timedelta(seconds=55)
    assert deliver_due() == 0

    # The next probe succeeds: the breaker closes and the backlog goes out.
    Subscription.objects.filter(pk=subscription.pk).update(breaker_open_until=timezone.now() - dt.timedelta(seconds=1))
    receiver.default = (200, {}, b"ok")
    make_due()
    assert deliver_due() == 5
    reload(subscription)
    assert (subscription.consecutive_failures, subscription.breaker_open_until) == (0, None)
    assert delivery.breaker_state(subscription) == "closed"
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    assert {str(e.event_id) for e in events} <= set(receiver.event_ids())


@pytest.mark.django_db
def test_an_answer_that_is_not_a_server_error_resets_the_count(partner, dev, receiver):
    subscription = SubscriptionFactory(partner=partner, url=receiver.url())
    receiver.answer((500, {}, b""), (502, {}, b""), (400, {}, b"bad"), (500, {}, b""))
    for _ in range(4):
        publish(partner)
    assert deliver_due() == 4
    reload(subscription)
    assert (subscription.consecutive_failures, subscription.breaker_open_until) == (1, None)


def test_the_cool_down_doubles_and_is_capped(dev):
    assert delivery.breaker_cooldown(3) == dt.timedelta(seconds=30)
    assert delivery.breaker_cooldown(4) == dt.timedelta(seconds=60)
    assert delivery.breaker_cooldown(6) == dt.timedelta(seconds=240)
    assert delivery.breaker_cooldown(50) == dt.timedelta(seconds=900)


@pytest.mark.django_db
def test_an_open_breaker_holds_back_only_its_own_subscription(partner, dev, receiver):
    broken = SubscriptionFactory(partner=partner, url=receiver.url("/broken"))
    Subscription.objects.filter(pk=broken.pk).update(
        consecutive_failures=3, breaker_open_until=timezone.now() + dt.timedelta(minutes=5)
    )
    other = PartnerFactory()
    SubscriptionFactory(partner=other, url=receiver.url("/fine"))
    publish(partner)
    publish(other)
    assert deliver_due() == 1
    assert receiver.paths() == ["/fine"]


@pytest.mark.django_db
def test_the_admin_shows_the_breaker(admin_client, partner, dev):
    subscription = SubscriptionFactory(partner=partner)
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=4, breaker_open_until=timezone.now() + dt.timedelta(minutes=5)
    )
    listing = admin_client.get("/admin/notifications/subscription/").content.decode()
    assert "circuit breaker" in listing.lower() and "open until" in listing and "4 failures in a row" in listing
    page = admin_client.get(f"/admin/notifications/subscription/{subscription.pk}/change/").content.decode()
    assert "open until" in page


# ---- the cap per partner ------------------------------------------------------------------------


@pytest.mark.django_db
def test_at_most_the_cap_of_one_partners_deliveries_are_in_flight(partner, dev, receiver):
    SubscriptionFactory(partner=partner, url=receiver.url())
    for _ in range(4):
        publish(partner)
    other = PartnerFactory()
    SubscriptionFactory(partner=other, url=receiver.url())
    publish(other)

    everything = Delivery.objects.all()
    first, second = delivery._claim(everything.filter(subscription__partner=partner)), delivery._claim(everything)
    assert first and second
    assert delivery._claim(everything.filter(subscription__partner=partner)) is None, "the partner's cap is 2"
    third = delivery._claim(everything)
    assert third is not None, "another partner is not held back"
    assert Delivery.objects.get(pk=third.delivery_pk).subscription.partner_id == other.pk
    assert in_flight(timezone.now()).filter(subscription__partner=partner).count() == 2

    # A finished send frees its slot.
    delivery.send_claimed(first)
    assert delivery._claim(everything.filter(subscription__partner=partner)) is not None


@pytest.mark.django_db
def test_an_expired_claim_does_not_hold_a_slot(partner, dev):
    SubscriptionFactory(partner=partner)
    for _ in range(3):
        publish(partner)
    assert delivery._claim(Delivery.objects.all()) and delivery._claim(Delivery.objects.all())
    assert delivery._claim(Delivery.objects.all()) is None
    # The workers holding them died: once their claims expire, they are due again.
    make_due()
    assert delivery._claim(Delivery.objects.all()) is not None


@pytest.mark.django_db(transaction=True)
def test_the_cap_holds_with_many_concurrent_claimers(dev):
    if connection.vendor != "postgresql":
        pytest.fail("SKIP LOCKED and row locks need PostgreSQL (make test provides it)")
    partners = [PartnerFactory(), PartnerFactory()]
    for p in partners:
        SubscriptionFactory(partner=p, url="http://127.0.0.1:9/hook")
        for _ in range(6):
            publish(p)
    claimers = 8
    gate = threading.Barrier(claimers)
    claims: list = []
    errors: list = []
    lock = threading.Lock()

    def claimer() -> None:
        try:
            gate.wait()
            while (claim := delivery._claim(Delivery.objects.all())) is not None:
                with lock:
                    claims.append(claim)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer) for _ in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    per_partner = {
        p.pk: Delivery.objects.filter(pk__in=[c.delivery_pk for c in claims], subscription__partner=p).count()
        for p in partners
    }
    assert per_partner == {partners[0].pk: 2, partners[1].pk: 2}
    assert len(claims) == 4
