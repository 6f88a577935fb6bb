"""The cursor codec of keyset paging: opaque, URL-safe cursors naming the last row of a page.
Plain Python (no DRF), so selectors may use it."""

from __future__ import annotations

import base64
import binascii

CURSOR_ERROR = {"field": "cursor", "message": "Not a cursor this API returned."}


class BadCursor(ValueError):
    """Not a cursor this API returned (or one of another list)."""


def encode_cursor(kind: str, *parts: object) -> str:
    """An opaque cursor naming the last row of a page: `kind` tells lists apart."""
    raw = "|".join([kind, *(str(part) for part in parts)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, count: int) -> list[str]:
    """The `count` parts of a cursor of this kind; BadCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor(cursor) from None
    found, *parts = raw.split("|")
    if found != kind or len(parts) != count:
        raise BadCursor(cursor)
    return parts
