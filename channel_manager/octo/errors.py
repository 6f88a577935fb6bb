"""OCTO's errors: HTTP 400 with {"error", "errorMessage"} and the offending id field
(UNAUTHORIZED 401 and FORBIDDEN 403), and the edge that turns every other answer of /octo/
(the kernel's problem+json: authentication, body guards, rate limits, faults) into them."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from channel_manager.kernel.problems import PROBLEM_CONTENT_TYPE

INVALID_PRODUCT_ID = "INVALID_PRODUCT_ID"
INVALID_OPTION_ID = "INVALID_OPTION_ID"
INVALID_UNIT_ID = "INVALID_UNIT_ID"
INVALID_AVAILABILITY_ID = "INVALID_AVAILABILITY_ID"
INVALID_BOOKING_UUID = "INVALID_BOOKING_UUID"
BAD_REQUEST = "BAD_REQUEST"
UNPROCESSABLE_ENTITY = "UNPROCESSABLE_ENTITY"
UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

PREFIX = "/octo/"


class OctoError(Exception):
    """An OCTO error answer; `fields` are the offending id (productId, uuid, …)."""

    def __init__(self, error: str, message: str, *, status: int = 400, **fields: Any) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.status = status
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "errorMessage": self.message, **self.fields}


# The kernel's problem codes, as OCTO says them (the HTTP status is kept).
_BY_PROBLEM_CODE = {
    "not_authenticated": UNAUTHORIZED,
    "partnership_not_active": FORBIDDEN,
    "partnership_disabled": FORBIDDEN,
    "partner_mismatch": FORBIDDEN,
    "permission_denied": FORBIDDEN,
    "internal_error": INTERNAL_SERVER_ERROR,
    "service_unavailable": INTERNAL_SERVER_ERROR,
}


def octo_body_for_problem(problem: dict[str, Any]) -> dict[str, Any]:
    code = str(problem.get("code") or "")
    message = str(problem.get("detail") or problem.get("title") or "Bad request.")
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        message += " " + "; ".join(
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message")) for e in errors
        )
    return {"error": _BY_PROBLEM_CODE.get(code, BAD_REQUEST), "errorMessage": message}


class OctoErrorsMiddleware:
    """On /octo/, a problem+json answer from anywhere below (authentication, permission, the
    body guards, Idempotency-Key, rate limits, an unrouted path, a fault) is answered in OCTO's
    shape with the same status and headers. Placed above the kernel's ApiGuardMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(PREFIX) or response.get("Content-Type") != PROBLEM_CONTENT_TYPE:
            return response
        try:
            problem = json.loads(response.content)
        except ValueError:
            problem = {}
        translated = HttpResponse(
            json.dumps(octo_body_for_problem(problem if isinstance(problem, dict) else {})),
            status=response.status_code,
            content_type="application/json",
        )
        for header in ("Retry-After", "WWW-Authenticate", "Octo-Capabilities", "X-Request-Id"):
            if header in response:
                translated[header] = response[header]
        return translated
