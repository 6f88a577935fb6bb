"""Sending deliveries: claim, POST, record, retry.

A delivery is claimed in a short transaction under `SELECT … FOR UPDATE SKIP LOCKED`: the claim
stamps a token and moves next_attempt_at to the claim's expiry, so no other worker picks it up
while this one sends (outside any transaction: no lock is held during the HTTP call, which also
keeps SQLite writers free in development). The result is recorded in a second transaction.
A worker that dies mid-send leaves the delivery pending with next_attempt_at at the claim's
expiry, after which deliver_due sends it again. A delivered delivery is never claimed again.

Row locks are taken in one order everywhere: subscription, deliveries (by pk), events (by pk).
"""

from __future__ import annotations

import datetime as dt
import functools
import http.client
import logging
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channel_manager.kernel.formats import rfc3339
from notifications import metrics, services
from notifications.models import Delivery, DeliveryAttempt, DeliveryState, Subscription
from notifications.signing import signature_header
from notifications.targets import Target, UnsafeTarget, check_target

logger = logging.getLogger(__name__)

USER_AGENT = "OTA-Channel-Manager-Webhooks/1.0"
DEFAULT_TIMEOUT_SECONDS = 10.0
# Wait before attempt n+1 (the first attempt goes at once): 10 attempts over ~3 days.
DEFAULT_RETRY_DELAYS = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
# A task (the per-event one and the periodic sweep) stops claiming new deliveries after this
# long, well inside the django-q task timeout; what is left is due and the next sweep takes it.
DEFAULT_TASK_BUDGET_SECONDS = 60.0
DEFAULT_BATCH = 100
EXCERPT_CHARS = 1000
READ_BYTES = 4096


def timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def retry_delays() -> tuple[float, ...]:
    return tuple(getattr(settings, "WEBHOOK_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))


def claim_lease() -> dt.timedelta:
    """How long a claim keeps others off: past the hard deadline of one send, with margin."""
    return dt.timedelta(seconds=timeout_seconds() + 30)


# ---- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    response_excerpt: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the addresses checked by notifications.targets, never re-resolving the host."""

    def __init__(self, host: str, port: int, *, addresses: tuple[str, ...], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def _open_socket(self) -> socket.socket:
        last_error: OSError | None = None
        for address in self._addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as error:
                last_error = error
        raise last_error or OSError("no address to connect to")

    def connect(self) -> None:
        self.sock = self._open_socket()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Certificates are verified against the system's CAs, for the URL's host name."""
    return ssl.create_default_context()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        sock = self._open_socket()
        try:
            self.sock = tls_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float) -> Outcome:
    """POST once; redirects are not followed. The whole exchange (connect, send, status and
    headers, the first bytes of the body) has a hard deadline of `timeout` seconds."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target.host, target.port, addresses=target.addresses, timeout=timeout)
    expired = threading.Event()

    def abort() -> None:  # a receiver trickling bytes must not hold the worker past the deadline
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(timeout, abort)
    watchdog.daemon = True
    started = time.monotonic()
    watchdog.start()
    status_code, error, excerpt = None, "", ""
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        if expired.is_set():  # status and headers cut short by the deadline: no answer
            raise TimeoutError
        status_code = response.status
        if 300 <= status_code < 400:
            error = f"HTTP {status_code}: redirect to {response.getheader('Location', '?')[:500]} not followed"
        elif not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        try:  # the answer is in: a body cut short only shortens the excerpt
            excerpt = response.read(READ_BYTES).decode("utf-8", "replace")[:EXCERPT_CHARS]
        except (OSError, http.client.HTTPException) as exc:
            excerpt = getattr(exc, "partial", b"").decode("utf-8", "replace")[:EXCERPT_CHARS]
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = f"no answer within {timeout:g} s" if expired.is_set() else f"{type(exc).__name__}: {exc}"
    finally:
        watchdog.cancel()
        connection.close()
    return Outcome(status_code, error[:2000], excerpt, int((time.monotonic() - started) * 1000))


# ---- claim, send, record -------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    delivery_pk: int
    token: uuid.UUID


def _claim(queryset) -> Claim | None:
    """Claim the first due, pending delivery of the queryset that no other worker holds."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            queryset.select_for_update(skip_locked=True)
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "pk")
            .only("pk", "attempt_count")
            .first()
        )
        if delivery is None:
            return None
        token = uuid.uuid4()
        Delivery.objects.filter(pk=delivery.pk).update(
            attempt_count=delivery.attempt_count + 1,
            next_attempt_at=now + claim_lease(),
            last_attempt_at=now,
            claim_token=token,
        )
    return Claim(delivery.pk, token)


def claim_delivery(*, delivery_pk: int) -> Claim | None:
    """Claim one delivery if it is pending, due and not held by another worker."""
    return _claim(Delivery.objects.filter(pk=delivery_pk))


def send_claimed(claim: Claim) -> str:
    """Send a claimed delivery and record the outcome; the delivery's state afterwards."""
    delivery = Delivery.objects.select_related("event", "subscription").get(pk=claim.delivery_pk)
    subscription = delivery.subscription
    if not subscription.active:
        metrics.count_delivery("failed")
        return _finish_refused(claim, f"subscription switched off: {subscription.disabled_reason or 'inactive'}")
    body = services.body_bytes(delivery.event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "CM-Event-Id": str(delivery.event.event_id),
        "CM-Event-Type": delivery.event.event_type,
        "CM-Signature": signature_header(secret=subscription.secret, body=body),
    }
    try:
        target = check_target(subscription.url)
    except UnsafeTarget as error:
        outcome = Outcome(None, f"not sent: {error}", "", 0)
    else:
        outcome = post(target, body, headers, timeout=timeout_seconds())
    state = record_outcome(claim, outcome)
    metrics.count_delivery(
        "disabled" if outcome.status_code == 410
        else {DeliveryState.DELIVERED: "delivered", DeliveryState.PENDING: "retry"}.get(state, "failed")
    )
    return state


def record_outcome(claim: Claim, outcome: Outcome) -> str:
    """Record an attempt and move the delivery on: delivered, retried later, or failed."""
    now = timezone.now()
    with transaction.atomic():
        if outcome.status_code == 410:
            # Locks in the order disable_subscription takes them: subscription, then deliveries.
            subscription_pk = Delivery.objects.filter(pk=claim.delivery_pk).values_list("subscription_id", flat=True)
            list(Subscription.objects.select_for_update().filter(pk__in=subscription_pk).values_list("pk", flat=True))
        delivery = Delivery.objects.select_for_update().get(pk=claim.delivery_pk)
        DeliveryAttempt.objects.create(
            delivery_id=claim.delivery_pk, at=now, status_code=outcome.status_code, duration_ms=outcome.duration_ms,
            error=outcome.error, response_excerpt=outcome.response_excerpt,
        )
        if delivery.state != DeliveryState.PENDING:
            return delivery.state  # settled meanwhile (by a 410, staff, a racing send): keep that
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        fields = ["last_status_code", "last_error"]
        if outcome.delivered:
            delivery.state = DeliveryState.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.claim_token = None
            fields += ["state", "delivered_at", "next_attempt_at", "claim_token"]
        elif outcome.status_code == 410:
            delivery.save(update_fields=fields)
            services.disable_subscription(
                subscription_pk=delivery.subscription_id,
                reason=f"endpoint answered 410 Gone at {rfc3339(now)}",
            )
            return DeliveryState.FAILED
        elif delivery.claim_token == claim.token:  # else someone re-claimed it: theirs decides
            delays = retry_delays()
            delivery.claim_token = None
            if delivery.attempt_count >= len(delays):
                delivery.state = DeliveryState.FAILED
                delivery.next_attempt_at = None
                fields += ["state"]
            else:
                delivery.next_attempt_at = now + dt.timedelta(seconds=delays[delivery.attempt_count])
            fields += ["next_attempt_at", "claim_token"]
        delivery.save(update_fields=fields)
        services.refresh_event_states(event_pks=[delivery.event_id])
    if outcome.delivered:
        logger.info("delivery %s delivered (%s)", claim.delivery_pk, outcome.status_code)
    else:
        logger.warning("delivery %s attempt failed: %s", claim.delivery_pk, outcome.error)
    return delivery.state


def _finish_refused(claim: Claim, reason: str) -> str:
    """Nothing was sent (the subscription is off): the delivery fails at once."""
    with transaction.atomic():
        updated = Delivery.objects.filter(
            pk=claim.delivery_pk, state=DeliveryState.PENDING, claim_token=claim.token
        ).update(state=DeliveryState.FAILED, next_attempt_at=None, claim_token=None, last_error=reason[:1000])
        delivery = Delivery.objects.only("event_id", "state").get(pk=claim.delivery_pk)
        if updated:
            services.refresh_event_states(event_pks=[delivery.event_id])
    return delivery.state


def deliver(*, delivery_pk: int) -> str | None:
    """Send one delivery if it is due and nobody else is sending it; its state afterwards, or
    None when it was not claimed (not pending, not due, or held by another worker)."""
    claim = claim_delivery(delivery_pk=delivery_pk)
    return send_claimed(claim) if claim else None


def _drain(queryset, *, limit: int) -> int:
    budget = float(getattr(settings, "WEBHOOK_TASK_BUDGET_SECONDS", DEFAULT_TASK_BUDGET_SECONDS))
    started = time.monotonic()
    sent = 0
    while sent < limit and time.monotonic() - started < budget:
        claim = _claim(queryset)
        if claim is None:
            break
        try:
            send_claimed(claim)
        except Exception:  # one broken delivery must not stop the others; its claim expires
            logger.exception("delivery %s could not be sent", claim.delivery_pk)
        sent += 1
    return sent


def deliver_event(*, event_pk: int, limit: int = DEFAULT_BATCH) -> int:
    """Send the event's due deliveries; how many were attempted."""
    return _drain(Delivery.objects.filter(event_id=event_pk), limit=limit)


def deliver_due(*, limit: int | None = None) -> int:
    """Send due deliveries of any event (first due first), a bounded batch; how many."""
    batch = limit if limit is not None else int(getattr(settings, "WEBHOOK_BATCH_SIZE", DEFAULT_BATCH))
    return _drain(Delivery.objects.all(), limit=batch)

