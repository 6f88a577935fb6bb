"""Guards in front of the partner API: body size and media type, and problem+json for failures
that happen outside a view's own error handling (the database going away, a bug)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from channel_manager.kernel.idempotency import is_partner_api
from channel_manager.kernel.problems import PROBLEM_CONTENT_TYPE, problem_response, unavailable

logger = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class ApiGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_partner_api(request.path):
            return self.get_response(request)
        if request.method in BODY_METHODS:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.MAX_REQUEST_BODY_BYTES:
                return problem_response(
                    413, "payload_too_large", f"The body is over {settings.MAX_REQUEST_BODY_BYTES} bytes."
                )
            if length > 0 and not is_json_media_type(request.META.get("CONTENT_TYPE", "")):
                return problem_response(415, "unsupported_media_type", "Send the body as application/json.")
        response = self.get_response(request)
        if response.status_code >= 500 and response.get("Content-Type") != PROBLEM_CONTENT_TYPE:
            if response.status_code == 503:
                return unavailable()
            return problem_response(500, "internal_error", "Something went wrong on our side; nothing was changed.")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_partner_api(request.path):
            return None
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable: %s", exception)
            return unavailable()
        if isinstance(exception, DatabaseError):
            logger.exception("database error")
        else:
            logger.exception("unhandled error in the partner API")
        return problem_response(500, "internal_error", "Something went wrong on our side; nothing was changed.")


# ---- middleware the partner API does not need ---------------------------------------------------


class OffPartnerApi:
    """Mixed into a Django middleware: it runs everywhere but on the partner API.

    Sessions, staff authentication and messages serve the admin and the customer pages; a partner
    call authenticates with its API key and never touches a session or a message, so on those
    paths they only cost CPU. Subclassing (rather than wrapping) keeps the admin's system checks,
    which look for these classes in MIDDLEWARE, satisfied.

    CSRF stays Django's own middleware, everywhere: `check --deploy` looks for it by its dotted
    path (security.W003 and the CSRF cookie checks), and on the partner API it costs little,
    since DRF views are csrf_exempt and a partner sends no CSRF cookie.
    """

    get_response: Callable[[HttpRequest], HttpResponse]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_partner_api(request.path):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(OffPartnerApi, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(OffPartnerApi, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(OffPartnerApi, messages.MessageMiddleware):
    pass

