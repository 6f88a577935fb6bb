"""The calendar every input date and timestamp must fall in (API fields and parameters, cursors,
admin forms, commands). Plain Python, so selectors and commands may use it.

Python's dates run from year 1 to 9999. A value at the very end of that range overflows as soon
as it is moved: to UTC (offsets are under a day), by a day (an inclusive range's end), or to the
venue's time zone. So the calendar we take input from is Python's less a day at each end, and
input outside it is refused where it is parsed, naming the field, instead of overflowing later.
"""

from __future__ import annotations

import datetime as dt

EARLIEST_DAY = dt.date(1, 1, 2)
LATEST_DAY = dt.date(9999, 12, 30)
EARLIEST_INSTANT = dt.datetime.combine(EARLIEST_DAY, dt.time.min, tzinfo=dt.UTC)
LATEST_INSTANT = dt.datetime.combine(LATEST_DAY, dt.time.max, tzinfo=dt.UTC)

DAY_RANGE_MESSAGE = f"Must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}."
INSTANT_RANGE_MESSAGE = (
    f"Must be between {EARLIEST_INSTANT:%Y-%m-%dT%H:%M:%SZ} and {LATEST_INSTANT:%Y-%m-%dT%H:%M:%SZ}."
)


def in_calendar(value: dt.date | dt.datetime) -> bool:
    """Whether a date, or an aware timestamp, lies within EARLIEST_DAY and LATEST_DAY (UTC)."""
    if isinstance(value, dt.datetime):
        # Compared as instants: Python compares across offsets without converting, so this
        # never overflows, whatever the offset.
        return EARLIEST_INSTANT <= value <= LATEST_INSTANT
    return EARLIEST_DAY <= value <= LATEST_DAY
