"""The cursor codec of keyset paging: opaque, URL-safe cursors naming the last row of a page.
Plain Python (no DRF), so selectors may use it."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

from channel_manager.kernel.dates import in_calendar

CURSOR_ERROR = {"field": "cursor", "message": "Not a cursor this API returned."}

# Row ids are 64-bit (BigAutoField) on every database: anything larger was never a row of ours,
# and is refused here rather than left to each backend (SQLite raises OverflowError on it).
MAX_ROW_ID = 2**63 - 1
# ASCII digits only: str.isdigit() also takes "²" or "٣", which int() then refuses.
_ROW_ID = re.compile(r"[0-9]{1,19}\Z")


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


def cursor_row_id(part: str) -> int:
    """A row id named by a cursor: 1 to MAX_ROW_ID in ASCII digits; BadCursor for anything else."""
    if not _ROW_ID.match(part) or not 0 < int(part) <= MAX_ROW_ID:
        raise BadCursor(part)
    return int(part)


def cursor_instant(part: str) -> dt.datetime:
    """An aware timestamp named by a cursor (ISO 8601 with an offset), in UTC; BadCursor for
    anything else, including instants at the very ends of the calendar."""
    try:
        value = dt.datetime.fromisoformat(part)
    except ValueError:
        raise BadCursor(part) from None
    # In the calendar, so that converting it to UTC (SQLite stores UTC text) cannot overflow.
    if value.tzinfo is None or not in_calendar(value):
        raise BadCursor(part)
    return value.astimezone(dt.UTC)
