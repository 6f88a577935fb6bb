"""RFC 9457 problem+json errors with the contract's stable codes, and the DRF exception handler."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from channel_manager.kernel.errors import CONFLICT, INVALID, NOT_FOUND, DomainError, validation_detail

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://errors.channel-manager.example/"

TITLES = {
    "validation_error": "Invalid request",
    "malformed_json": "Malformed JSON",
    "not_authenticated": "Not authenticated",
    "partnership_not_active": "Partnership not active yet",
    "partnership_disabled": "Partnership disabled",
    "partner_mismatch": "Partner mismatch",
    "permission_denied": "Permission denied",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "not_acceptable": "Not acceptable",
    "idempotency_in_progress": "Request with this Idempotency-Key still in progress",
    "payload_too_large": "Payload too large",
    "unsupported_media_type": "Unsupported media type",
    "idempotency_key_reused": "Idempotency-Key reused with a different request",
    "rate_limited": "Too many requests",
    "service_unavailable": "Service temporarily unavailable",
    "internal_error": "Internal error",
}


class Problem(exceptions.APIException):
    """An error the API answers as problem+json. Raise it from views and services."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.errors = errors
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(detail=detail, code=code)


def validation_problem(errors: list[dict[str, str]]) -> Problem:
    return Problem(400, "validation_error", validation_detail(errors), errors=errors)


# How each kind of domain error is answered over HTTP.
STATUS_BY_KIND = {INVALID: 400, NOT_FOUND: 404, CONFLICT: 409}


def problem_for(error: DomainError) -> Problem:
    """The problem+json answer to a domain error raised by a service."""
    return Problem(STATUS_BY_KIND[error.kind], error.code, error.message, errors=error.errors, extra=error.extra)


def register_titles(titles: dict[str, str]) -> None:
    """The apps add the titles of their own error codes (e.g. channel_manager.orders.errors)."""
    TITLES.update(titles)


def encodable(text: str) -> str:
    """Text that encodes as UTF-8. A message may quote the request (e.g. "… is not a valid
    choice"), and JSON may carry a lone surrogate (\\ud800), which no UTF-8 renderer can write:
    it is quoted as its escape instead of failing the answer with a 500."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def problem_body(status_code: int, code: str, detail: str, errors=None, extra=None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": TITLES.get(code, code.replace("_", " ").capitalize()),
        "status": status_code,
        "code": code,
        "detail": encodable(detail),
    }
    if errors is not None:
        body["errors"] = [{key: encodable(str(value)) for key, value in error.items()} for error in errors]
    if extra:
        body.update(extra)
    return body


def problem_response(
    status_code: int, code: str, detail: str, *, errors=None, extra=None, headers=None
) -> HttpResponse:
    """A plain Django response, for middleware and views outside DRF."""
    response = HttpResponse(
        json.dumps(problem_body(status_code, code, detail, errors, extra)),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a path under the partner API that names no operation (e.g. an empty or
    slash-bearing orderId) answers problem+json like every other API error; elsewhere Django's
    own page."""
    if request.path.startswith(settings.PARTNER_API_PREFIXES):
        return problem_response(404, "not_found", "No such resource.")
    return defaults.page_not_found(request, exception)


def unavailable() -> HttpResponse:
    return problem_response(
        503, "service_unavailable", "The service is briefly unavailable; retry the request.",
        headers={"Retry-After": "2"},
    )


def flatten_errors(detail: Any, path: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into [{"field": "items[0].quantity", "message": …}]."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                out.extend(flatten_errors(value, path))
            elif isinstance(key, int):  # ListField reports {index: error}
                out.extend(flatten_errors(value, f"{path}[{key}]"))
            else:
                out.extend(flatten_errors(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(detail, list):
        if detail and all(isinstance(x, (str, exceptions.ErrorDetail)) for x in detail):
            out.extend({"field": path, "message": str(msg)} for msg in detail)
        else:
            for index, value in enumerate(detail):
                if value in ({}, [], None):
                    continue
                out.extend(flatten_errors(value, f"{path}[{index}]"))
    else:
        out.append({"field": path, "message": str(detail)})
    return out


def _drf_problem(exc: exceptions.APIException) -> tuple[int, str, str, list | None]:
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        p = validation_problem(errors)
        return 400, "validation_error", p.detail, errors
    if isinstance(exc, exceptions.ParseError):
        return 400, "malformed_json", f"The body is not valid JSON: {exc.detail}", None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return 401, "not_authenticated", str(exc.detail), None
    if isinstance(exc, exceptions.NotFound):
        return 404, "not_found", "No such resource.", None
    if isinstance(exc, exceptions.MethodNotAllowed):
        return 405, "method_not_allowed", str(exc.detail), None
    if isinstance(exc, exceptions.NotAcceptable):
        return 406, "not_acceptable", str(exc.detail), None
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return 415, "unsupported_media_type", "Send the body as application/json.", None
    if isinstance(exc, exceptions.Throttled):
        return 429, "rate_limited", str(exc.detail), None
    if isinstance(exc, exceptions.PermissionDenied):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "permission_denied"
        return 403, code, str(exc.detail), None
    return exc.status_code, "error", str(exc.detail), None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):
        exc = Problem(413, "payload_too_large", "The request body is too large.")
    if isinstance(exc, DomainError):
        exc = problem_for(exc)
    if isinstance(exc, Problem):
        body = problem_body(exc.status_code, exc.code, str(exc.detail), exc.errors, exc.extra)
        headers.update(exc.headers)
        status_code = exc.status_code
    elif isinstance(exc, exceptions.APIException):
        status_code, code, detail, errors = _drf_problem(exc)
        body = problem_body(status_code, code, detail, errors)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        if status_code == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="channel-manager"'
    else:
        return None  # unexpected: let Django log it; the middleware answers problem+json 500/503
    return Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


__all__ = ["Problem", "problem_response", "exception_handler", "flatten_errors", "status"]
