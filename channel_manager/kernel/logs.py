"""Structured logs: one JSON object per line, with the request id, the partner, the operation and
the subject a line is about (apps register subject fields, e.g. the order); the request id
travels from an API request into the tasks it causes.

- `RequestContextMiddleware` (first in MIDDLEWARE) takes `X-Request-Id` from the request when it
  is 1–128 characters of `A-Z a-z 0-9 . _ : -` (else makes a uuid4 hex), keeps it in a context
  variable for the request, echoes it on the response and logs one access line per request
  (method, path without the query string, status, duration_ms, operation, partner_id).
- `ContextFilter` (on the handler) copies the context onto every record; `JsonFormatter` and
  `PlainFormatter` render it. Both redact: wallet manifest tokens in paths, bearer tokens and
  webhook secrets in messages and exception texts.
- Tasks call `task_context(request_id=…, operation=…)`; the enqueueing code passes
  `request_id_kwargs()` to `async_task`, so the request id survives the queue.

Nothing here imports models at module level: settings.LOGGING loads this module before the app
registry is ready, and gunicorn's master loads it before Django is set up at all.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.functional import LazyObject

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ACCESS_LOGGER = "channel_manager.access"
# Probes and scrapes are frequent and say nothing; their outcome shows in the metrics.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# url_name + method → the OpenAPI operationId, as the apps register them (tests/test_ops_metrics.py
# checks it against the schema). Routes outside the contract keep their url_name.
OPERATIONS: dict[tuple[str, str], str] = {}

# Fields a record may carry (from the context or `extra=`), in the order they are written.
CONTEXT_FIELDS: tuple[str, ...] = ("request_id", "partner_id", "operation", "duration_ms")
EXTRA_FIELDS = ("method", "path", "status", "task", "event_id", "delivery_id", "outcome", "result")
# URL kwarg → context field, filled from the request's route (e.g. orderId → order_id).
URL_FIELDS: dict[str, str] = {}


def register_operations(operations: dict[tuple[str, str], str]) -> None:
    """An app names its routes' operations: {(url_name, method): operationId}."""
    OPERATIONS.update(operations)


def register_subject_field(field: str, *, url_kwarg: str | None = None) -> None:
    """An app adds a context field that says what a line is about (written after the partner),
    optionally taken from a URL kwarg of the request's route."""
    global CONTEXT_FIELDS
    if field not in CONTEXT_FIELDS:
        at = CONTEXT_FIELDS.index("operation")
        CONTEXT_FIELDS = (*CONTEXT_FIELDS[:at], field, *CONTEXT_FIELDS[at:])
    if url_kwarg is not None:
        URL_FIELDS[url_kwarg] = field


_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("cm_log_context", default=None)

_WALLET_PATH = re.compile(r"(/wallets/)[^/\s?#\"'<>]+")
_SECRETS = (
    (re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+"), r"\1[redacted]"),
    (re.compile(r"\b(cmk_|cmg_|whsec_)[A-Za-z0-9_-]+"), r"\1[redacted]"),
)
HOST = socket.gethostname()


# ---- the context ------------------------------------------------------------------------------


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> str | None:
    if value is not None and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return None


def current_request_id() -> str | None:
    context = _context.get()
    return context.get("request_id") if context else None


def request_id_kwargs() -> dict[str, str]:
    """Keyword arguments for async_task that carry the current request id into the task."""
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}


@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add fields to every log line written inside the block (nested blocks inherit)."""
    inherited = _context.get() or {}
    context = {**inherited, **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def add_log_context(**fields: Any) -> None:
    """Add fields to the innermost log_context (does nothing outside one)."""
    context = _context.get()
    if context is not None:
        context.update({k: v for k, v in fields.items() if v is not None})


@contextmanager
def task_context(*, request_id: str | None, operation: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """The context of one task run: the request id it was queued with (or a fresh one, so that
    the lines of one run, and the tasks it queues, still belong together)."""
    with log_context(request_id=valid_request_id(request_id) or new_request_id(), operation=operation,
                     **fields) as context:
        yield context


# ---- redaction --------------------------------------------------------------------------------


def loggable_path(path: str) -> str:
    """The path as it may be logged: a wallet manifest token is a credential."""
    return _WALLET_PATH.sub(r"\1[redacted]", path)


def redact(text: str) -> str:
    text = _WALLET_PATH.sub(r"\1[redacted]", text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


# ---- the request ------------------------------------------------------------------------------


def operation_for(request: HttpRequest) -> str:
    """The request's OpenAPI operationId, else its url_name ("admin" for the admin, "unmatched"
    when no route matched): a small, fixed set of values, fit for a metric label."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched"
    if "admin" in match.namespaces:
        return "admin"
    name = match.url_name or "unnamed"
    method = "GET" if request.method == "HEAD" else (request.method or "")
    return OPERATIONS.get((name, method), name)


def partner_of(request: HttpRequest) -> str | None:
    """The partnerId of an authenticated partner request (never a staff user, never the key)."""
    partner = getattr(request, "cm_partner", None)
    user = request.__dict__.get("user")  # DRF puts the partner here; never evaluate a lazy user
    if partner is None and user is not None and not isinstance(user, LazyObject):
        partner = user
    partner_id = getattr(partner, "partner_id", None)
    return partner_id if isinstance(partner_id, str) else None


def url_field_of(request: HttpRequest, kwarg: str) -> str | None:
    match = getattr(request, "resolver_match", None)
    value = match.kwargs.get(kwarg) if match is not None else None
    return value if isinstance(value, str) and len(value) <= 64 else None


class RequestContextMiddleware:
    """First in MIDDLEWARE: the request id, the log context and the access line."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.logger = logging.getLogger(ACCESS_LOGGER)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = valid_request_id(request.META.get(REQUEST_ID_META)) or new_request_id()
        request.request_id = request_id
        started = time.perf_counter()
        with log_context(request_id=request_id, _request=request):
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            if request.path not in QUIET_PATHS:
                duration_ms = round((time.perf_counter() - started) * 1000, 1)
                path = loggable_path(request.path)
                self.logger.info(
                    "%s %s %s", request.method, path, response.status_code,
                    extra={
                        "method": request.method, "path": path, "status": response.status_code,
                        "duration_ms": duration_ms, "operation": operation_for(request),
                    },
                )
        return response


# ---- records ----------------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Copies the context (request id, partner, subject, operation) onto every record; fields given
    with `extra=` win. Put it on the handler, so that records of every logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        request = context.get("_request")
        url_kwargs = {field: kwarg for kwarg, field in URL_FIELDS.items()}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                value = context.get(name)
                if value is None and request is not None:
                    if name == "partner_id":
                        value = partner_of(request)
                    elif name in url_kwargs:
                        value = url_field_of(request, url_kwargs[name])
                setattr(record, name, value)
        return True


def _timestamp(created: float) -> str:
    moment = dt.datetime.fromtimestamp(created, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (RFC 3339, UTC), level, logger, message, the context
    fields when known, host and pid, and the exception text. Secrets are redacted."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS + EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = redact(value) if isinstance(value, str) else value
        document["host"] = HOST
        document["pid"] = record.process or os.getpid()
        if record.exc_info:
            document["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            document["exception"] = redact(record.exc_text)
        if record.stack_info:
            document["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(document, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """Development: `time LEVEL logger message [request_id=… partner_id=…]`, redacted as well."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%", **kwargs: Any) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s", datefmt, style, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None) is not None
        ]
        if fields:
            first, newline, rest = text.partition("\n")
            text = f"{first} [{' '.join(fields)}]{newline}{rest}"
        return redact(text)
