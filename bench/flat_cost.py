"""Phase d of `make bench`: SQL statements per createOrder, per issuance and per getOrder for
orders of 1, 6 and 500 wallets, counted in-process with Django's CaptureQueriesContext against the
benchmark database (not a test database). The API is called through DRF's APIClient, issuance
through `channel_manager.orders.issuance.issue_order`, as the worker calls it.

    python -m bench.flat_cost API_KEY PARTNER_ID   (DATABASE_URL etc. set; prints one JSON line)

Orders are created with visit dates far from the ones the load phases use. The createOrder count
includes what runs on commit (queueing the issuance task and marking the order Scheduled), since
the request pays for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys


def main() -> None:
    api_key, partner_id = sys.argv[1], sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channel_manager.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from catalog.selectors import venue_today
    from channel_manager.orders.issuance import issue_order
    from channel_manager.orders.models import Order

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    # Far from the load phases' dates (which start tomorrow), one date per order.
    base = min(venue_today() + dt.timedelta(days=500), dt.date(2027, 12, 1))
    counter = iter(range(1000))

    def body(wallets: int, day: dt.date) -> dict:
        ref = f"FLAT-{wallets}-{next(counter)}"
        d = day.isoformat()
        if wallets == 1:
            items = [{"itemId": "DAY-ADULT", "quantity": 1, "visitDate": d}]
        elif wallets == 6:
            items = [
                {"itemId": "DAY-ADULT", "quantity": 2, "visitDate": d},
                {"itemId": "FAMILY-GROUP", "quantity": 3, "visitDate": d},
                {"itemId": "PARK-AND-SHOW", "quantity": 3, "visitDate": d, "visitTime": "19:30"},
            ]
        elif wallets == 500:  # the same three lines, 300 + 1 + 199 wallets
            items = [
                {"itemId": "DAY-ADULT", "quantity": 300, "visitDate": d},
                {"itemId": "FAMILY-GROUP", "quantity": 3, "visitDate": d},
                {"itemId": "PARK-AND-SHOW", "quantity": 199, "visitDate": d, "visitTime": "19:30"},
            ]
        else:
            raise ValueError(wallets)
        return {"partnerId": partner_id, "sellToOrderReference": ref, "paymentReference": "PAY-" + ref, "items": items}

    def measure(wallets: int, day: dt.date) -> dict:
        with CaptureQueriesContext(connection) as create:
            response = client.post("/channelManager", body(wallets, day), format="json")
        if response.status_code != 202:
            raise SystemExit(f"createOrder ({wallets} wallets) answered {response.status_code}: {response.content!r}")
        order_id = response.json()["orderId"]
        order_pk = Order.objects.get(order_id=order_id).pk
        with CaptureQueriesContext(connection) as issue:
            status = issue_order(order_pk=order_pk)
        with CaptureQueriesContext(connection) as get:
            fetched = client.get(f"/channelManager/{order_id}")
        document = fetched.json()
        minted = sum(1 for line in document["items"] for w in line["wallets"] if w["manifestUrl"])
        return {
            "wallets": wallets, "status": status, "minted": minted,
            "create": len(create), "issue": len(issue), "get": len(get),
            "sql": {"create": [q["sql"][:160] for q in create.captured_queries],
                    "issue": [q["sql"][:160] for q in issue.captured_queries],
                    "get": [q["sql"][:160] for q in get.captured_queries]},
        }

    for wallets in (1, 6, 500):  # warm-up: caches (venue, catalog), first connection
        measure(wallets, base + dt.timedelta(days=wallets % 7))
    results = [measure(w, base + dt.timedelta(days=10 + i)) for i, w in enumerate((1, 6, 500))]
    print("FLAT_JSON " + json.dumps(results))


if __name__ == "__main__":
    main()
