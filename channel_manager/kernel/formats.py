"""How values are written in every API, export and log: one formatter each."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal


def rfc3339(value: dt.datetime | None) -> str | None:
    """An aware datetime as RFC 3339 in UTC with a `Z`: 2026-11-27T10:00:00.123456Z."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def hhmm(value: dt.time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"
