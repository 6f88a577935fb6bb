"""Shared set-up of the OCTO tests: a client that checks every /octo/ answer against
octo-types' openapi.yaml, and the visit dates and availability ids they book."""

from __future__ import annotations

import datetime as dt
from typing import Any

from catalog.selectors import get_venue, venue_today
from tests.octo_schema import assert_octo


class OctoClient:
    """Wraps an APIClient: each call returns (status, body) after validating the body."""

    def __init__(self, client) -> None:
        self.client = client
        self.last = None

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        send = getattr(self.client, method.lower())
        kwargs: dict[str, Any] = {"format": "json"} if body is not None else {}
        response = send(path, body, **kwargs, **headers) if body is not None else send(path, **headers)
        self.last = response
        return response.status_code, assert_octo(response, method, path)

    def get(self, path: str, **headers: str):
        return self.call("GET", path, **headers)

    def post(self, path: str, body: Any = None, **headers: str):
        return self.call("POST", path, body if body is not None else {}, **headers)

    def patch(self, path: str, body: Any, **headers: str):
        return self.call("PATCH", path, body, **headers)


def visit_day(days: int = 7) -> dt.date:
    return venue_today() + dt.timedelta(days=days)


def availability_id(day: dt.date, time: dt.time | None = None) -> str:
    return dt.datetime.combine(day, time or dt.time.min, tzinfo=get_venue().tzinfo).isoformat()


def reserve_body(product: str = "SHOW-EVENING", *, units: int = 2, unit_id: str = "UNIT",
                 day: dt.date | None = None, time: dt.time | None = dt.time(19, 30), **extra: Any) -> dict[str, Any]:
    day = day or visit_day()
    return {
        "productId": product, "optionId": "DEFAULT", "availabilityId": availability_id(day, time),
        "unitItems": [{"unitId": unit_id} for _ in range(units)], **extra,
    }
