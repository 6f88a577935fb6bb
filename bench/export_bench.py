"""Finance export benchmark: 100,000 orders with 1–3 lines each in PostgreSQL, exported as CSV
and as XLSX through the admin's exporter (channel_manager.orders.exports.OrderLinesExporter, the code
behind the export view). Prints, for each format, the time, the rows, the file size and the
peak memory: tracemalloc's peak of Python allocations, and the growth of the process's
maximum resident set (ru_maxrss) over a baseline taken just before the export.

    CM_DEV=1 bash .ci/with-postgres .venv/bin/python bench/export_bench.py [--orders 100000] [--no-trace]

The last line is the XLSX figure: seconds for 100,000 orders and the peak memory. --no-trace
leaves the tracemalloc runs out (tracing slows each export down several times).

It migrates the database named by DATABASE_URL itself, then creates the orders with
bulk_create (only when the database does not hold them already). Each export runs in a fresh
child process, so that one export's peak cannot hide another's: once untraced (the time and
ru_maxrss figures) and once under tracemalloc (the peak of Python allocations; tracing slows it
down).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_PARTNERS = ("bench-alpha", "bench-beta", "bench-gamma")
BATCH = 5000


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channel_manager.settings")
    os.environ.setdefault("CM_DEV", "1")
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("export_bench: DATABASE_URL must point at PostgreSQL (run it under .ci/with-postgres)")


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def seed(n_orders: int) -> None:
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from catalog.models import Item
    from channel_manager.kernel.models import Partner
    from channel_manager.orders.models import Order, OrderLine, OrderStatus

    call_command("load_catalog", str(ROOT / "catalog" / "data" / "demo_catalog.json"), verbosity=0)
    partners = [
        Partner.objects.get_or_create(partner_id=pid, defaults={"name": pid.replace("-", " ").title()})[0]
        for pid in BENCH_PARTNERS
    ]
    existing = Order.objects.filter(partner__in=partners).count()
    if existing >= n_orders:
        print(f"seed: {existing} bench orders already there")
        return
    items = {i.item_id: i for i in Item.objects.filter(item_id__in=["DAY-ADULT", "FAMILY-GROUP", "SHOW-EVENING",
                                                                     "PARK-AND-SHOW"])}
    codes = sorted(items)
    rng = random.Random(42)
    now = timezone.now()
    statuses = [OrderStatus.ISSUED] * 7 + [OrderStatus.DRAFT, OrderStatus.ERROR, OrderStatus.CANCELLED]
    started = time.perf_counter()
    made = existing
    while made < n_orders:
        size = min(BATCH, n_orders - made)
        orders, plans = [], []
        for i in range(made, made + size):
            status = rng.choice(statuses)
            created = now - dt.timedelta(minutes=rng.randrange(0, 90 * 24 * 60))
            n_lines = rng.randint(1, 3)
            lines = []
            total = Decimal("0.00")
            for number in range(1, n_lines + 1):
                item = items[rng.choice(codes)]
                quantity = rng.randint(1, 6 if item.item_type == "group_ticket" else 4)
                priced = status != OrderStatus.ERROR
                line_total = (item.price if item.item_type == "group_ticket" else item.price * quantity)
                total += line_total
                lines.append((number, item, quantity, created.date() + dt.timedelta(days=rng.randint(1, 60)),
                              item.price if priced else None, line_total if priced else None))
            # Now and then a reference that a spreadsheet would take for a formula.
            reference = f"=BENCH-{i:07d}" if i % 97 == 0 else f"BENCH-{i:07d}"
            orders.append(Order(
                partner=partners[i % len(partners)],
                sell_to_order_reference=reference,
                status=status,
                status_message="items[0]: SHOW-EVENING has no 18:00 slot" if status == OrderStatus.ERROR else None,
                payment_reference=None if status == OrderStatus.DRAFT else f"PAY-{i:07d}",
                currency="EUR",
                total_amount=None if status == OrderStatus.ERROR else total,
                created_at=created,
                updated_at=created,
                issued_at=created + dt.timedelta(seconds=5) if status in (OrderStatus.ISSUED,
                                                                         OrderStatus.CANCELLED) else None,
                cancelled_at=created + dt.timedelta(days=1) if status == OrderStatus.CANCELLED else None,
            ))
            plans.append(lines)
        with transaction.atomic():
            Order.objects.bulk_create(orders, batch_size=BATCH)  # PostgreSQL returns the pks
            OrderLine.objects.bulk_create(
                [
                    OrderLine(order=order, line_number=number, item=item, item_code=item.item_id,
                              item_type=item.item_type, quantity=quantity, visit_date=visit,
                              unit_price=unit_price, line_total=line_total)
                    for order, lines in zip(orders, plans, strict=True)
                    for number, item, quantity, visit, unit_price, line_total in lines
                ],
                batch_size=BATCH,
            )
        made += size
    lines = OrderLine.objects.filter(order__partner__in=partners).count()
    print(f"seed: {made} orders, {lines} lines in {time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------------------------
# One export (in a child process)
# --------------------------------------------------------------------------------------------


def export_once(fmt: str, traced: bool) -> dict:
    from django.db import connection

    from channel_manager.orders.exports import ExportFilters, OrderLinesExporter

    connection.ensure_connection()
    exporter = OrderLinesExporter(ExportFilters())
    baseline = maxrss_mib()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        if fmt == "csv":
            for chunk in exporter.iter_csv():  # what StreamingHttpResponse sends
                out.write(chunk)
        else:
            exporter.write_xlsx(out)  # the temporary file FileResponse sends
        size = out.tell()
    seconds = time.perf_counter() - started
    result = {"format": fmt, "rows": exporter.rows, "bytes": size, "seconds": round(seconds, 2),
              "maxrss_baseline_mib": round(baseline, 1), "maxrss_delta_mib": round(maxrss_mib() - baseline, 1),
              "traced": traced}
    if traced:
        result["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
        tracemalloc.stop()
    return result


def run_child(fmt: str, traced: bool) -> dict:
    command = [sys.executable, __file__, "--child", fmt] + (["--traced"] if traced else [])
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--no-trace", action="store_true",
                        help="skip the tracemalloc runs (tracing makes the XLSX export ~8x slower)")
    parser.add_argument("--child", choices=["csv", "xlsx"], help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup_django()
    if args.child:
        print(json.dumps(export_once(args.child, args.traced)))
        return

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed(args.orders)
    print("Each export in a fresh process; maxrss: the process's peak resident set before the export "
          "(after Django's start) and its growth during the export.", flush=True)
    print(f"{'format':6} {'rows':>8} {'size MiB':>9} {'time s':>8} {'maxrss MiB':>11} {'maxrss +MiB':>12} "
          f"{'traced time s':>14} {'tracemalloc peak MiB':>21} {'traced maxrss +MiB':>19}", flush=True)
    for fmt in ("csv", "xlsx"):
        plain = run_child(fmt, traced=False)
        line = (f"{fmt:6} {plain['rows']:>8} {plain['bytes'] / 2**20:>9.1f} {plain['seconds']:>8.2f} "
                f"{plain['maxrss_baseline_mib']:>11.1f} {plain['maxrss_delta_mib']:>12.1f}")
        if not args.no_trace:
            traced = run_child(fmt, traced=True)
            line += (f" {traced['seconds']:>14.2f} {traced['tracemalloc_peak_mib']:>21.2f} "
                     f"{traced['maxrss_delta_mib']:>19.1f}")
        print(line, flush=True)
        if fmt == "xlsx":
            # The figure finance waits on (issue 2.6: at most 30 s for 100,000 orders, flat memory).
            peak = f"peak memory +{plain['maxrss_delta_mib']:.1f} MiB resident"
            if not args.no_trace:
                peak += f", {traced['tracemalloc_peak_mib']:.1f} MiB of Python allocations"
            print(f"XLSX: {args.orders:,} orders ({plain['rows']:,} rows, {plain['bytes'] / 2**20:.1f} MiB) in "
                  f"{plain['seconds']:.1f} s; {peak}", flush=True)


if __name__ == "__main__":
    main()
