"""The scan phase's set-up (phase f of `make bench`), in-process against the benchmark database:
tickets valid today, gate devices, and the code lists wrk sends.

    python -m bench.scan_setup API_KEY PARTNER_ID OUT_DIR FRESH REDEEMED DEVICES
        (DATABASE_URL etc. set; prints one line "SCAN_JSON {...}")

- One real order through the product: createOrder (DRF's APIClient) for DAY-ADULT (untimed),
  visit date today in the venue's time zone, then `issue_order` as the worker runs it: it must
  settle Issued. Its tickets are scanned like the rest.
- The rest of the FRESH tickets are minted in bulk through the wallets services the issuance
  uses (`create_shells` + `plan_mint` + `mint`, validity valid), in batches of 5,000 wallets of
  one DAY-ADULT ticket each: the same rows issuance writes (asset numbers, references, manifest
  tokens), without order rows or capacity, which the gate never reads. A few seconds, where
  thousands of orders through the API would take minutes (and DAY-ADULT sells 5,000 a day).
- REDEEMED of those tickets are marked used (an hour ago, by the first device) with one UPDATE:
  the "already redeemed" rejections.
- DEVICES gate devices through `create_gate_device` (every item admitted); their tokens.

Written to OUT_DIR: fresh.txt (the unused asset numbers, shuffled, one a line) and redeemed.txt.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BATCH = 5000


@dataclass
class BulkLine:
    """An order line as wallets.contents reads one (OrderLineLike), without an order."""

    pk: int
    item_type: str
    quantity: int
    visit_date: dt.date
    visit_time: dt.time | None = None
    component_schedule: list = field(default_factory=list)


def main() -> None:
    api_key, partner_id, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    fresh_wanted, redeemed_wanted, device_count = (int(v) for v in sys.argv[4:7])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channel_manager.settings")
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.test import APIClient

    from catalog.models import Item
    from catalog.selectors import venue_today
    from channel_manager.kernel.models import Partner
    from channel_manager.orders.issuance import issue_order
    from channel_manager.orders.models import Order
    from wallets.contents import is_timed
    from wallets.gate.devices import create_gate_device
    from wallets.models import Asset, GateDevice
    from wallets.services import HolderSnapshot, Shell, create_shells, mint, plan_mint

    started = time.monotonic()
    today = venue_today()
    item = Item.objects.get(item_id="DAY-ADULT")
    if is_timed(item):
        raise SystemExit("DAY-ADULT is timed in this catalog: the scan phase needs an untimed ticket")

    # 1. A real Issued order for today.
    real = min(200, fresh_wanted)
    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    response = client.post("/channelManager", {
        "partnerId": partner_id, "sellToOrderReference": "SCAN-REAL-1", "paymentReference": "PAY-SCAN",
        "customer": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
        "items": [{"itemId": "DAY-ADULT", "quantity": real, "visitDate": today.isoformat()}],
    }, format="json")
    if response.status_code != 202:
        raise SystemExit(f"createOrder for today answered {response.status_code}: {response.content[:500]!r}")
    order = Order.objects.get(order_id=response.json()["orderId"])
    status = issue_order(order_pk=order.pk)
    if status != "Issued":
        order.refresh_from_db()
        raise SystemExit(f"the scan phase's order settled {status}: {order.status_message}")
    numbers = list(Asset.objects.filter(wallet__sell_to_order_reference="SCAN-REAL-1")
                   .values_list("asset_number", flat=True))
    if len(numbers) != real:
        raise SystemExit(f"the Issued order holds {len(numbers)} tickets, not {real}")

    # 2. The rest minted in bulk, valid.
    partner = Partner.objects.get(partner_id=partner_id)
    line = BulkLine(pk=1, item_type=item.item_type, quantity=1, visit_date=today)
    snapshot = HolderSnapshot(holder_name="Ada Lovelace", holder_language=None, holder_country=None,
                              sell_to_order_reference="SCAN-BULK", buy_from_order_reference="")
    left = fresh_wanted - real
    while left > 0:
        size = min(BATCH, left)
        with transaction.atomic():
            [shells] = create_shells(partner_pk=partner.pk, snapshot=snapshot, references=[[None] * size])
            plan = plan_mint(shells=[Shell(line.pk, w) for w in shells], lines=[line], items={line.pk: item})
            wallets = mint(plan, validity="valid")
        numbers += Asset.objects.filter(wallet__in=wallets).values_list("asset_number", flat=True)
        left -= size

    # 3. Devices; 4. some tickets already used.
    devices = [create_gate_device(name=f"bench gate {n + 1}") for n in range(device_count)]
    random.shuffle(numbers)
    redeemed, fresh = numbers[:redeemed_wanted], numbers[redeemed_wanted:]
    first: GateDevice = devices[0][0]
    Asset.objects.filter(asset_number__in=redeemed).update(
        redeemed_at=timezone.now() - dt.timedelta(hours=1), redeemed_by=first)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fresh.txt").write_text("\n".join(fresh) + "\n")
    (out_dir / "redeemed.txt").write_text("\n".join(redeemed) + "\n")
    print("SCAN_JSON " + json.dumps({
        "today": today.isoformat(), "order_id": str(order.order_id), "order_tickets": real,
        "fresh": len(fresh), "redeemed": len(redeemed), "tokens": [raw for _, raw in devices],
        "device_ids": [str(d.device_id) for d, _ in devices], "seconds": time.monotonic() - started,
    }))


if __name__ == "__main__":
    main()
