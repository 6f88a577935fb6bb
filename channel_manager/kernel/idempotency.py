"""Idempotency-Key for every partner write, as the contract's "Retries and idempotency".

The key is bound to a hash of method, path and body. A row per (partner, key) is claimed in its
own committed transaction, so a concurrent repeat sees it and answers 409. The request then runs
in a transaction that also stores its response: either both the change and the stored response
commit, or neither does (a crash leaves only the claim, which expires and is taken over).
Responses 409, 429 and 5xx are not stored.

A claim is held by its token, the `locked_at` it was taken with. A request slower than
IDEMPOTENCY_LOCK_SECONDS may find its claim taken over by a repeat (which writes a new
`locked_at`): it then stores nothing, since the store is an UPDATE conditional on the token.
Its changes roll back with it, so that what took effect is always what the stored response
says, and it answers as any repeat does: the stored response, or 409 while the repeat runs.
Replays stay byte for byte the first stored response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from channel_manager.kernel.authentication import bearer_token, key_owner, partnership_problem
from channel_manager.kernel.models import IdempotencyRecord
from channel_manager.kernel.problems import problem_response, unavailable

HEADER = "HTTP_IDEMPOTENCY_KEY"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
REPLAYED_HEADERS = ("Content-Type", "Location")
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")

logger = logging.getLogger(__name__)


def is_partner_api(path: str) -> bool:
    """A path of the partner API (settings.PARTNER_API_PREFIXES): JSON bodies, problem+json, keys."""
    return path.startswith(settings.PARTNER_API_PREFIXES) and not path.startswith(settings.API_PAGE_PREFIXES)


def request_hash(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), request.body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def stored_response(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body or b""), status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


def should_store(status_code: int) -> bool:
    return not (status_code in (409, 429) or status_code >= 500)


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.META.get(HEADER)
        if key is None or request.method not in WRITE_METHODS or not is_partner_api(request.path):
            return self.get_response(request)
        if request.path.startswith(getattr(settings, "IDEMPOTENCY_EXEMPT_PREFIXES", ())):
            return self.get_response(request)  # not a partner's call: its records are per partner
        if not 1 <= len(key) <= 255:
            return problem_response(
                400, "validation_error", "Idempotency-Key must be 1–255 characters.",
                errors=[{"field": "Idempotency-Key", "message": "Must be 1–255 characters."}],
            )
        if CONTROL_CHARACTERS.search(key):  # NUL cannot even be stored in PostgreSQL text
            return problem_response(
                400, "validation_error", "Idempotency-Key must not contain control characters.",
                errors=[{"field": "Idempotency-Key", "message": "Must not contain control characters."}],
            )
        try:
            owner = key_owner(bearer_token(request.META.get("HTTP_AUTHORIZATION")))
            if owner is None or partnership_problem(owner[0]) is not None:
                return self.get_response(request)  # the API answers 401/403; nothing to remember
            partner, livemode = owner
            request.cm_partner = partner
            request.cm_key_owner = owner
            fingerprint = request_hash(request)
            # Keys are separate per mode (API.md, "Test mode"): a test key's record never answers a live call.
            record, claimed = self._claim(partner.pk, livemode, key, fingerprint)
        except (OperationalError, InterfaceError):
            return unavailable()
        if not claimed:
            return self._answer_repeat(record, fingerprint)
        try:
            return self._run_once(request, record, fingerprint)
        except (OperationalError, InterfaceError):
            return unavailable()

    def _run_once(self, request: HttpRequest, record: IdempotencyRecord, fingerprint: str) -> HttpResponse:
        token = record.locked_at  # the claim is ours while the row still carries it
        claim_lost = False
        try:
            with transaction.atomic():
                response = self.get_response(request)
                if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                    response.render()
                if should_store(response.status_code):
                    if self._store(record, token, response):
                        return response
                    # Our claim expired and a repeat took the key over: keep nothing of ours.
                    claim_lost = True
                    transaction.set_rollback(True)
                else:
                    # Not stored: make sure nothing the request did survives a 5xx.
                    transaction.set_rollback(response.status_code >= 500)
        except Exception:
            self._release(record, token)
            raise
        if claim_lost:
            logger.warning(
                "Idempotency-Key claim expired while its request ran; its %s rolled back, not stored",
                response.status_code, extra={"idempotency_record": record.pk},
            )
            current = IdempotencyRecord.objects.filter(pk=record.pk).first()
            if current is None:  # the repeat gave up and freed the key: the partner may retry
                return self._in_progress()
            return self._answer_repeat(current, fingerprint)
        # Not stored: free the key so the partner can retry with it.
        self._release(record, token)
        return response

    @staticmethod
    def _store(record: IdempotencyRecord, token: dt.datetime | None, response: HttpResponse) -> bool:
        """Store the response if the claim is still ours; False if a repeat took it over."""
        stored = IdempotencyRecord.objects.filter(pk=record.pk, locked_at=token, response_status__isnull=True).update(
            response_status=response.status_code,
            response_headers={h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)},
            response_body=response.content,
            locked_at=None,
        )
        return stored == 1

    @staticmethod
    def _release(record: IdempotencyRecord, token: dt.datetime | None) -> None:
        """Free the key, unless a repeat has taken the claim over meanwhile (it is theirs)."""
        IdempotencyRecord.objects.filter(pk=record.pk, locked_at=token, response_status__isnull=True).delete()

    def _claim(
        self, partner_pk: int, livemode: bool, key: str, fingerprint: str
    ) -> tuple[IdempotencyRecord, bool]:
        now = timezone.now()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    partner_id=partner_pk, livemode=livemode, key=key, request_hash=fingerprint, locked_at=now
                )
            return record, True
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.filter(partner_id=partner_pk, livemode=livemode, key=key).first()
        if record is None:  # deleted between our insert and read: the first request gave up
            return self._claim(partner_pk, livemode, key, fingerprint)
        stale = now - dt.timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS)
        expired = now - dt.timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
        if record.created_at < expired or (
            record.response_status is None and record.locked_at is not None and record.locked_at < stale
        ):
            # A claim whose request died (its changes rolled back with it), or an expired key:
            # take it over, atomically, so that only one repeat wins. The new locked_at is the
            # new claim's token: it must differ from the old one, or the old request could store.
            if record.locked_at is not None and now <= record.locked_at:
                now = record.locked_at + dt.timedelta(microseconds=1)
            taken = IdempotencyRecord.objects.filter(
                pk=record.pk, locked_at=record.locked_at, created_at=record.created_at
            ).update(
                request_hash=fingerprint, locked_at=now, created_at=now,
                response_status=None, response_headers={}, response_body=None,
            )
            if taken:
                record.refresh_from_db()
                return record, True
            record.refresh_from_db()
        return record, False

    def _answer_repeat(self, record: IdempotencyRecord, fingerprint: str) -> HttpResponse:
        if record.request_hash != fingerprint:
            return problem_response(
                422, "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a new request.",
            )
        if record.response_status is None:
            return self._in_progress()
        return stored_response(record)

    @staticmethod
    def _in_progress() -> HttpResponse:
        return problem_response(
            409, "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )


