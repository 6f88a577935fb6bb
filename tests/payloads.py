"""Request bodies as partners send them."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.utils import timezone

_refs = itertools.count(1)


def visit_date(days: int = 30) -> str:
    return (timezone.localdate() + dt.timedelta(days=days)).isoformat()


def line(item_id: str = "DAY-ADULT", quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"itemId": item_id, "quantity": quantity, "visitDate": extra.pop("visitDate", visit_date()), **extra}


def order_body(partner_id: str = "acme-travel", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerId": partner_id,
        "sellToOrderReference": f"ACME-{next(_refs):06d}",
        "paymentReference": "PAY-77812",
        "customer": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
                     "phone": "+441234567890", "country": "GB", "language": "en"},
        "items": [line()],
    }
    body.update(overrides)
    return body


def contract_example_body(partner_id: str = "acme-travel", **overrides: Any) -> dict[str, Any]:
    """The contract's example order: tickets with references, a group, a package with a schedule."""
    day = visit_date()
    return order_body(
        partner_id,
        items=[
            {"itemId": "DAY-ADULT", "quantity": 2, "visitDate": day, "visitTime": None,
             "wallet": {"externalReferenceNumbers": ["ACME-T-1", "ACME-T-2"]}},
            {"itemId": "FAMILY-GROUP", "quantity": 4, "visitDate": day,
             "wallet": {"externalReferenceNumbers": ["ACME-G-1"]}},
            {"itemId": "PARK-AND-SHOW", "quantity": 1, "visitDate": day,
             "wallet": {"componentSchedule": [
                 {"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]}},
        ],
        **overrides,
    )
