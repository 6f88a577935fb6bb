"""Sending deliveries: claim, POST, record, retry.

A delivery is claimed in a short transaction under `SELECT … FOR UPDATE SKIP LOCKED`: the claim
stamps a token and moves next_attempt_at to the claim's expiry, so no other worker picks it up
while this one sends (outside any transaction: no lock is held during the HTTP call, which also
keeps SQLite writers free in development). The result is recorded in a second transaction.
A worker that dies mid-send leaves the delivery pending with next_attempt_at at the claim's
expiry, after which deliver_due sends it again. A delivered delivery is never claimed again.

One partner's endpoint cannot occupy the webhook workers (they run on their own django-q2
cluster, settings.WEBHOOK_QUEUE, so never hold up issuance either):
- the TCP connect has its own short deadline (WEBHOOK_CONNECT_TIMEOUT_SECONDS) inside the hard
  deadline of the whole exchange (WEBHOOK_TIMEOUT_SECONDS);
- a circuit breaker per subscription: after WEBHOOK_BREAKER_THRESHOLD failed attempts in a row
  (no answer, 429, 5xx) its deliveries are not claimed for a cool-down that doubles with each
  further failure; then one probe at a time is sent, and a success closes the breaker. The
  deliveries stay pending meanwhile and keep their retry schedule: nothing is lost;
- at most WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER deliveries of one partner are in flight at once,
  across all workers: the claim locks the partner's row and counts its claims again under it.

Row locks are taken in one order everywhere: subscription, deliveries (by pk), events (by pk).
A claim locks a delivery (SKIP LOCKED) and then its partner's row, which nothing locks before a
delivery.
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
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.models import Partner
from notifications import metrics, services
from notifications.models import Delivery, DeliveryAttempt, DeliveryState, Event, Subscription
from notifications.signing import signature_header
from notifications.targets import Target, UnsafeTarget, check_target

logger = logging.getLogger(__name__)

USER_AGENT = "OTA-Channel-Manager-Webhooks/1.0"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 3.0
DEFAULT_BREAKER_THRESHOLD = 5
DEFAULT_BREAKER_COOLDOWN_SECONDS = 30
DEFAULT_BREAKER_MAX_COOLDOWN_SECONDS = 900
DEFAULT_MAX_IN_FLIGHT_PER_PARTNER = 2
# A claim that lost a race for a partner's last slot tries another partner; this many at most.
CLAIM_TRIES = 5
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


def connect_timeout_seconds() -> float:
    """The TCP connect's own deadline; never longer than the whole exchange's."""
    connect = float(getattr(settings, "WEBHOOK_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS))
    return min(connect, timeout_seconds())


def breaker_threshold() -> int:
    return max(1, int(getattr(settings, "WEBHOOK_BREAKER_THRESHOLD", DEFAULT_BREAKER_THRESHOLD)))


def breaker_cooldown(consecutive_failures: int) -> dt.timedelta:
    """How long the breaker stays open after this many failures in a row (at least the
    threshold): the base cool-down, doubled for each failure past the threshold, capped."""
    base = float(getattr(settings, "WEBHOOK_BREAKER_COOLDOWN_SECONDS", DEFAULT_BREAKER_COOLDOWN_SECONDS))
    ceiling = float(getattr(settings, "WEBHOOK_BREAKER_MAX_COOLDOWN_SECONDS", DEFAULT_BREAKER_MAX_COOLDOWN_SECONDS))
    doublings = min(max(0, consecutive_failures - breaker_threshold()), 30)
    return dt.timedelta(seconds=min(base * 2**doublings, ceiling))


def max_in_flight_per_partner() -> int:
    return max(1, int(getattr(settings, "WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER", DEFAULT_MAX_IN_FLIGHT_PER_PARTNER)))


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
    sent: bool = True  # False: refused before any connection was made (the target is not allowed)

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def endpoint_failed(self) -> bool:
        """What the circuit breaker counts: no answer, or an overloaded or failing endpoint."""
        return self.sent and (self.status_code is None or self.status_code == 429 or self.status_code >= 500)


class ConnectTimeout(OSError):
    """No TCP connection within the connect deadline."""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the addresses checked by notifications.targets, never re-resolving the host."""

    def __init__(
        self, host: str, port: int, *, addresses: tuple[str, ...], timeout: float, connect_timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self.connect_timeout = min(connect_timeout, timeout)

    def _open_socket(self) -> socket.socket:
        """Connect within connect_timeout in all (over every address), then allow the exchange
        its longer timeout. The watchdog in post() cannot cut a connect short (no socket yet)."""
        deadline = time.monotonic() + self.connect_timeout
        last_error: OSError | None = None
        for address in self._addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                sock = socket.create_connection((address, self.port), left)
            except TimeoutError:
                last_error = ConnectTimeout(f"no connection within {self.connect_timeout:g} s")
                continue
            except OSError as error:
                last_error = error
                continue
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last_error or ConnectTimeout(f"no connection within {self.connect_timeout:g} s")

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


def post(
    target: Target, body: bytes, headers: dict[str, str], *, timeout: float, connect_timeout: float | None = None
) -> Outcome:
    """POST once; redirects are not followed. The whole exchange (connect, send, status and
    headers, the first bytes of the body) has a hard deadline of `timeout` seconds, and the TCP
    connect alone one of `connect_timeout` (default: the same)."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        target.host, target.port, addresses=target.addresses, timeout=timeout,
        connect_timeout=timeout if connect_timeout is None else connect_timeout,
    )
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
    except ConnectTimeout as exc:
        error = f"ConnectTimeout: {exc}"
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


def in_flight(now: dt.datetime) -> QuerySet[Delivery]:
    """Deliveries a worker is sending: claimed, the claim not expired, the outcome not recorded."""
    return Delivery.objects.filter(state=DeliveryState.PENDING, claim_token__isnull=False, next_attempt_at__gt=now)


def _claimable(queryset, now: dt.datetime) -> QuerySet[Delivery]:
    """Due, pending deliveries whose subscription's breaker lets one through and whose partner
    has a free slot. A hint only (another worker may claim meanwhile): _may_send decides."""
    partner_in_flight = (
        in_flight(now).filter(subscription__partner_id=OuterRef("subscription__partner_id"))
        .order_by().values("subscription__partner_id").annotate(n=Count("pk")).values("n")
    )
    probing = in_flight(now).filter(subscription_id=OuterRef("subscription_id"))
    return (
        queryset.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .filter(Q(subscription__breaker_open_until__isnull=True) | Q(subscription__breaker_open_until__lte=now))
        .exclude(Q(subscription__consecutive_failures__gte=breaker_threshold()) & Exists(probing))
        .alias(partner_in_flight=Coalesce(Subquery(partner_in_flight, output_field=IntegerField()), Value(0)))
        .filter(partner_in_flight__lt=max_in_flight_per_partner())
    )


def _may_send(*, partner_pk: int, subscription_pk: int, now: dt.datetime) -> bool:
    """Under the partner's row lock, so that concurrent claims see each other: the partner has a
    free slot, and the subscription's breaker is closed, or half-open with no probe in flight."""
    if in_flight(now).filter(subscription__partner_id=partner_pk).count() >= max_in_flight_per_partner():
        return False
    failures, open_until = Subscription.objects.filter(pk=subscription_pk).values_list(
        "consecutive_failures", "breaker_open_until"
    ).get()
    if open_until is not None and open_until > now:
        return False
    if failures >= breaker_threshold() and in_flight(now).filter(subscription_id=subscription_pk).exists():
        return False
    return True


def _claim(queryset) -> Claim | None:
    """Claim the first due, pending delivery of the queryset that no other worker holds, whose
    subscription's breaker lets it through and whose partner has a free slot."""
    now = timezone.now()
    full: set[int] = set()  # partners whose last slot another worker took meanwhile
    with transaction.atomic():
        for _ in range(CLAIM_TRIES):
            row = (
                _claimable(queryset, now).exclude(subscription__partner_id__in=full)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("next_attempt_at", "pk")
                .values("pk", "attempt_count", "subscription_id", "subscription__partner_id")
                .first()
            )
            if row is None:
                return None
            partner_pk = row["subscription__partner_id"]
            # Serializes the claims of one partner's deliveries (only claims lock this row
            # after a delivery; see the module doc for the lock order).
            Partner.objects.select_for_update().filter(pk=partner_pk).values_list("pk", flat=True).first()
            if not _may_send(partner_pk=partner_pk, subscription_pk=row["subscription_id"], now=now):
                full.add(partner_pk)
                continue
            token = uuid.uuid4()
            Delivery.objects.filter(pk=row["pk"]).update(
                attempt_count=row["attempt_count"] + 1,
                next_attempt_at=now + claim_lease(),
                last_attempt_at=now,
                claim_token=token,
            )
            return Claim(row["pk"], token)
    return None


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
        outcome = Outcome(None, f"not sent: {error}", "", 0, sent=False)
    else:
        outcome = post(target, body, headers, timeout=timeout_seconds(), connect_timeout=connect_timeout_seconds())
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
        # Locks in the order disable_subscription takes them: subscription, then deliveries.
        subscription_pk = Delivery.objects.filter(pk=claim.delivery_pk).values_list("subscription_id", flat=True)
        subscription = (
            Subscription.objects.select_for_update().filter(pk__in=subscription_pk)
            .only("pk", "consecutive_failures", "breaker_open_until").first()
        )
        if subscription is not None and outcome.sent:
            _update_breaker(subscription, failed=outcome.endpoint_failed, now=now)
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


def _update_breaker(subscription: Subscription, *, failed: bool, now: dt.datetime) -> None:
    """Count a failure (opening the breaker at the threshold, for longer with each further
    failure) or close the breaker on an answer. The subscription row is locked."""
    if not failed:
        if subscription.consecutive_failures or subscription.breaker_open_until:
            if subscription.breaker_open_until:
                logger.info("subscription %s: circuit breaker closed", subscription.pk)
            Subscription.objects.filter(pk=subscription.pk).update(consecutive_failures=0, breaker_open_until=None)
        return
    failures = subscription.consecutive_failures + 1
    open_until = None
    if failures >= breaker_threshold():
        cooldown = breaker_cooldown(failures)
        open_until = now + cooldown
        logger.warning(
            "subscription %s: circuit breaker open for %g s after %d failed attempts in a row",
            subscription.pk, cooldown.total_seconds(), failures,
        )
    Subscription.objects.filter(pk=subscription.pk).update(consecutive_failures=failures, breaker_open_until=open_until)


def breaker_state(subscription: Subscription, now: dt.datetime | None = None) -> str:
    """closed, open (nothing is sent until breaker_open_until) or half-open (one probe at a time)."""
    now = now or timezone.now()
    if subscription.breaker_open_until is not None and subscription.breaker_open_until > now:
        return "open"
    if subscription.consecutive_failures >= breaker_threshold():
        return "half-open"
    return "closed"


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


def _drain(*querysets, limit: int) -> int:
    """Claim and send from each queryset in turn until it has nothing claimable, within one
    budget of time and `limit` deliveries in all."""
    budget = float(getattr(settings, "WEBHOOK_TASK_BUDGET_SECONDS", DEFAULT_TASK_BUDGET_SECONDS))
    started = time.monotonic()
    sent = 0
    for queryset in querysets:
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
    """Send the event's due deliveries, then, with the time left, its partner's other due ones:
    a task whose claim found the partner's slots taken leaves its delivery to the tasks that
    hold them (or to the periodic sweep). How many were attempted."""
    partner_pk = Event.objects.filter(pk=event_pk).values_list("partner_id", flat=True).first()
    backlog = Delivery.objects.filter(subscription__partner_id=partner_pk) if partner_pk is not None else None
    return _drain(Delivery.objects.filter(event_id=event_pk), *([backlog] if backlog is not None else []), limit=limit)


def deliver_due(*, limit: int | None = None) -> int:
    """Send due deliveries of any event (first due first), a bounded batch; how many."""
    batch = limit if limit is not None else int(getattr(settings, "WEBHOOK_BATCH_SIZE", DEFAULT_BATCH))
    return _drain(Delivery.objects.all(), limit=batch)

