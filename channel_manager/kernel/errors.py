"""Domain errors: what a service raises when a rule says no. They know nothing of HTTP.

Each carries a stable `code` (the word partners and staff see) and a `kind` that says what sort
of refusal it is. The edges decide how to show it: the partner API answers problem+json with the
status its kind maps to (channel_manager.kernel.problems), the admin shows a message.
"""

from __future__ import annotations

from typing import Any

INVALID = "invalid"  # the request can never succeed as it is
NOT_FOUND = "not_found"  # the thing asked for is not there (or not the caller's)
CONFLICT = "conflict"  # the thing is not in a state that allows it now


class DomainError(Exception):
    kind: str = INVALID
    code: str = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        errors: list[dict[str, str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.errors = errors
        self.extra = extra or {}

    def messages(self) -> list[str]:
        """One line per offending field (or the message), for a form or an admin message."""
        if self.errors:
            return [f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in self.errors]
        return [self.message]


class ValidationFailed(DomainError):
    """Fields that break the rules, each as {"field": "items[0].quantity", "message": …}."""

    code = "validation_error"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(validation_detail(errors), errors=errors)


class NotFound(DomainError):
    kind = NOT_FOUND
    code = "not_found"


class Conflict(DomainError):
    kind = CONFLICT
    code = "conflict"


def validation_detail(errors: list[dict[str, str]]) -> str:
    """One line that sums up the errors: the only one with its field, else how many."""
    if len(errors) == 1:
        first = errors[0]
        return f"{first['field']}: {first['message']}" if first.get("field") else first["message"]
    return f"{len(errors)} fields are invalid"
