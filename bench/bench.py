"""`make bench`: throughput and latency of order intake and of end-to-end issuance, on a throwaway
PostgreSQL (run under .ci/with-postgres, which `make bench` does).

    bash .ci/with-postgres .venv/bin/python -m bench.bench [--intake-seconds 20] [--e2e-seconds 20]
                                                          [--e2e-rate 150] [--connections 32]

Phases (each prints what it measured; a table at the end, also written to bench/out/latest.txt;
`--skip NAME` leaves one out, `--phases a,b` runs only those: pgbench, flat, floor, intake, e2e, scan):

a. pgbench reference: single-row INSERT commits per second, 8 clients, ~10 s.
b. Floor: a bare Django+DRF endpoint that validates a small JSON body and inserts one row
   (bench/floor), served by gunicorn exactly as the product is, under the same wrk load as the
   intake (same connections and seconds, the same order body). Absolute figures on a shared
   2-core machine are noisy; the intake's ratio to the floor measured in the same run holds.
c. Intake: createOrder under wrk (32 connections, ~20 s), no issuance workers running.
   Throughput (and its ratio to the floor), latency percentiles, non-202 answers, SQL statements
   per request (from pg_stat_statements: calls during the phase / requests), CPU split gunicorn
   vs PostgreSQL.
d. End to end: the qcluster running, a steady stream of orders at a fixed rate (a Python
   open-loop client: Debian has no wrk2) for ~20 s, then wait until all settle. Orders and
   wallets settled per second, submit-to-settled p50/p99 from the order rows and their history.
e. Flat cost: statements per createOrder / issuance / getOrder at 1, 6 and 500 wallets
   (bench/flat_cost.py, CaptureQueriesContext in-process).
f. Gate scans: POST /gate/scans under wrk (16 connections, ~20 s), half accepted (unused tickets
   valid today, each scanned once), half rejected (unknown and used codes); set up by
   bench/scan_setup.py, driven by bench/gate_scan.lua, checked against the scan log and the
   assets afterwards; its floor is the floor phase run again at 16 connections.

Settings are production's: DEBUG off, SECRET_KEY set, gunicorn `channel_manager.wsgi` with
production's configuration file (channel_manager/deploy/gunicorn.conf.py: sync workers, 2 per
core + 1; the floor is served with the same file; BENCH_GUNICORN_ARGS adds arguments to both),
LOG_LEVEL=INFO unless set.
The cluster from .ci/with-postgres runs with fsync=off and synchronous_commit=off, so commits are
cheaper than on a production server: the pgbench line is there to compare machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    CORES,
    IN_FLIGHT,
    PY,
    REPO,
    Api,
    app_env,
    free_port,
    log,
    machine_busy_seconds,
    percentile,
    postmaster_pid,
    require_env,
    restart_postgres,
    sale_dates,
    self_children_cpu,
    setup_database,
    six_wallet_order,
    sql,
    sql_one,
    start_gunicorn,
    start_qcluster,
    tree_cpu_seconds,
)
from bench.floor.schema import CREATE_TABLE

PARTNER_ID = "bench"
OUT = REPO / "bench" / "out"
FLOOR_WSGI = "bench.floor.wsgi"
TARGETS = {
    "intake_x_floor": 0.5,  # intake req/s / floor req/s, same run, same connections
    "intake_p99_ms": 250,
    "e2e_orders_per_s": 150,
    "e2e_wallets_per_s": 900,
    "e2e_p50_s": 1.0,
    "e2e_p99_s": 5.0,
    "scan_per_s": 500,  # POST /gate/scans at 16 connections, half accepted, half rejected
    "scan_p99_ms": 50,
}
PHASES = ("pgbench", "flat", "floor", "intake", "e2e", "scan")


# ---- a. pgbench ----------------------------------------------------------------------------------


def pgbench_reference(seconds: int) -> dict:
    pgbench = Path(os.environ["PGBIN"]) / "pgbench"
    if not pgbench.exists():
        found = shutil.which("pgbench")
        if not found:
            return {"note": "pgbench not found"}
        pgbench = Path(found)
    sql("DROP TABLE IF EXISTS bench_scratch")
    sql("CREATE TABLE bench_scratch (id bigserial PRIMARY KEY, v double precision, at timestamptz DEFAULT now())")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO bench_scratch (v) VALUES (random());\n")
    try:
        result = subprocess.run(
            [str(pgbench), "-n", "-c", "8", "-j", "2", "-T", str(seconds), "-f", script.name,
             os.environ["DATABASE_URL"]],
            capture_output=True, text=True,
        )
    finally:
        os.unlink(script.name)
        sql("DROP TABLE IF EXISTS bench_scratch")
    match = re.search(r"tps = ([\d.]+)", result.stdout)
    if result.returncode != 0 or not match:
        return {"note": f"pgbench failed: {result.stderr.strip()[-300:]}"}
    latency = re.search(r"latency average = ([\d.]+) ms", result.stdout)
    return {"tps": float(match.group(1)), "latency_ms": float(latency.group(1)) if latency else None}


# ---- pg_stat_statements --------------------------------------------------------------------------


def enable_pg_stat_statements() -> str | None:
    """Load pg_stat_statements (a restart: shared_preload_libraries). None when it works, else
    why not."""
    if not sql_one("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'"):
        return "pg_stat_statements is not installed (PostgreSQL contrib): statements/request not measured"
    if "pg_stat_statements" not in (sql_one("SHOW shared_preload_libraries") or ""):
        sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        restart_postgres()
    sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return None


TX_CONTROL = r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)"
# Foreign-key checks that PostgreSQL's RI triggers run per inserted row (SELECT 1 FROM ONLY ...
# FOR KEY SHARE): pg_stat_statements counts them as top-level statements, but the app never
# sends them, so they are left out of "statements per request".
FK_CHECK = r"^SELECT (\$\d+|1) FROM ONLY .* FOR KEY SHARE OF"
THIS_DB = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"


def statement_calls() -> tuple[int, int]:
    """Statements the app sent in this database since the last reset: all, and all but
    transaction control."""
    row = sql(
        "SELECT coalesce(sum(calls) FILTER (WHERE query !~ %s), 0), "
        f"coalesce(sum(calls) FILTER (WHERE query !~ %s AND query !~* %s), 0) FROM pg_stat_statements WHERE {THIS_DB}",
        (FK_CHECK, FK_CHECK, TX_CONTROL),
    )[0]
    return int(row[0]), int(row[1])


def top_statements(limit: int = 12) -> list[tuple[int, str]]:
    return [
        (int(calls), " ".join(query.split())[:110])
        for calls, query in sql(
            f"SELECT calls, query FROM pg_stat_statements WHERE {THIS_DB} AND query !~ %s ORDER BY calls DESC LIMIT %s",
            (FK_CHECK, limit),
        )
    ]


def reset_statements() -> None:
    sql("SELECT pg_stat_statements_reset()")


# ---- CPU -----------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of gunicorn, PostgreSQL, the qcluster and the load generator over a phase,
    and of everything else on the machine (other people's work: noise)."""

    def __init__(self, gunicorn_pid: int, qcluster_pid: int | None = None) -> None:
        self.pids = {"gunicorn": gunicorn_pid, "postgres": postmaster_pid(), "qcluster": qcluster_pid}

    def snapshot(self) -> dict[str, float]:
        values = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        values["client"] = self_children_cpu() + _own_cpu()
        values["machine"] = machine_busy_seconds()
        values["wall"] = time.monotonic()
        return values

    @staticmethod
    def split(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        delta = {k: after[k] - before[k] for k in before}
        wall = delta.pop("wall")
        machine = delta.pop("machine")
        delta["other"] = max(0.0, machine - sum(delta.values()))
        delta = {k: v for k, v in delta.items() if v > 0.005 or k in ("gunicorn", "postgres")}
        delta["wall"] = wall
        delta["machine"] = machine
        return delta


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_wrk(port: int, key: str, seconds: int, connections: int, run_id: str, dates: list[str]) -> dict:
    """createOrder under wrk (bench/create_order.lua)."""
    return wrk_script(port, "create_order.lua", "/channelManager", seconds, connections,
                      [run_id, PARTNER_ID, key, ",".join(dates)])


def wrk_script(port: int, script: str, path: str, seconds: int, connections: int, script_args: list[str]) -> dict:
    """wrk with one of bench/*.lua; the figures its done() prints as BENCH_JSON."""
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is not installed: apt-get install -y wrk (make bench does it)")
    argv = [
        wrk, "-t", str(min(CORES, connections)), "-c", str(connections), "-d", f"{seconds}s", "--latency",
        "--timeout", "10s", "-s", str(REPO / "bench" / script), f"http://127.0.0.1:{port}{path}",
        "--", *script_args,
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    data = json.loads(line[len("BENCH_JSON "):])
    data["raw"] = result.stdout
    return data


ORDERS_LIKE = "SELECT count(*) FROM channel_manager_order WHERE sell_to_order_reference LIKE %s"
FLOOR_ROWS_LIKE = "SELECT count(*) FROM bench_floor_row WHERE reference LIKE %s"


def wait_quiet(prefix: str, timeout: float = 60, count_query: str = ORDERS_LIKE) -> int:
    """Wait until the server has finished what wrk left queued when it stopped: the count of
    orders (or rows of count_query) with this reference prefix stays the same for a second.
    Returns that count."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = int(sql_one(count_query, (prefix + "%",)))
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            break
        time.sleep(0.2)
    return last


def wrk_figures(data: dict, cpu: dict[str, float], handled: int, connections: int) -> dict:
    """What the floor and the intake phases both report from one wrk run."""
    return {
        "connections": connections,
        "requests": data["requests"],
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["latency_us"]["p50"] / 1000,
        "p90_ms": data["latency_us"]["p90"] / 1000,
        "p99_ms": data["latency_us"]["p99"] / 1000,
        "max_ms": data["latency_us"]["max"] / 1000,
        "statuses": data["statuses"],
        "socket_errors": {k: v for k, v in data["errors"].items() if v and k != "status"},
        "cpu": cpu,
        "handled": handled,
        "gunicorn_cpu_ms_per_request": 1000 * cpu.get("gunicorn", 0) / handled,
        "postgres_cpu_ms_per_request": 1000 * cpu.get("postgres", 0) / handled,
    }


# ---- b. floor ------------------------------------------------------------------------------------


def floor_phase(seconds: int, connections: int, day: str, pgss: bool) -> dict:
    """The bare Django+DRF one-INSERT endpoint (bench/floor) under gunicorn_argv's configuration
    and the intake's wrk load; its own gunicorn, stopped before the product's starts."""
    log(f"b. floor: bare Django+DRF one-INSERT endpoint, warm-up, then wrk -c {connections} for {seconds} s")
    sql("DROP TABLE IF EXISTS bench_floor_row")
    sql(CREATE_TABLE)
    port = free_port()
    gunicorn = start_gunicorn(port, app_env(DJANGO_SETTINGS_MODULE="bench.floor.settings"), app=FLOOR_WSGI)
    try:
        wrk_script(port, "create_order.lua", "/floor", 3, connections, ["WARM", PARTNER_ID, "-", day, "/floor", "201"])
        wait_quiet("WARM-", count_query=FLOOR_ROWS_LIKE)
        if pgss:
            reset_statements()
        meter = CpuMeter(gunicorn.pid)
        before = meter.snapshot()
        data = wrk_script(port, "create_order.lua", "/floor", seconds, connections,
                           ["FLOOR", PARTNER_ID, "-", day, "/floor", "201"])
        inserted = wait_quiet("FLOOR-", count_query=FLOOR_ROWS_LIKE)
        cpu = CpuMeter.split(before, meter.snapshot())
    finally:
        gunicorn.cleanup()
    handled = max(1, data["requests"], inserted + data["unexpected"])
    result = wrk_figures(data, cpu, handled, connections)
    result.update(gunicorn=" ".join(gunicorn.argv[2:]), non201=data["unexpected"], inserted_rows=inserted)
    if pgss:
        calls, without_tx = statement_calls()
        result["statements_per_request"] = calls / handled
        result["statements_per_request_no_tx"] = without_tx / handled
    sql("DROP TABLE IF EXISTS bench_floor_row")
    if data["unexpected"] and not inserted:
        sys.exit(f"the floor endpoint answered no 201: {data['statuses']}\n{data['raw'][-2000:]}")
    log(f"   {result['requests']} requests, {result['rps']:.0f} req/s, p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms, non-201 {result['non201']} {result['statuses'] or ''}")
    return result


# ---- c. intake -----------------------------------------------------------------------------------


def intake_phase(port: int, key: str, seconds: int, connections: int, dates: list[str], pgss: bool,
                 gunicorn_pid: int) -> dict:
    log(f"c. intake: warm-up, then wrk -c {connections} for {seconds} s (no issuance workers running)")
    run_wrk(port, key, 3, connections, "WARM", dates)
    wait_quiet("WARM-")
    if pgss:
        reset_statements()
    meter = CpuMeter(gunicorn_pid)
    before = meter.snapshot()
    data = run_wrk(port, key, seconds, connections, "INTAKE", dates)
    # Statements, CPU and rows include the requests wrk left queued; all are divided by them.
    accepted = wait_quiet("INTAKE-")
    cpu = CpuMeter.split(before, meter.snapshot())
    handled = max(1, data["requests"], accepted + data["unexpected"])
    result = wrk_figures(data, cpu, handled, connections)
    result.update(non202=data["unexpected"], accepted_rows=accepted)
    if pgss:
        calls, without_tx = statement_calls()
        result["statements_per_request"] = calls / handled
        result["statements_per_request_no_tx"] = without_tx / handled
        result["top_statements"] = [(c / handled, q) for c, q in top_statements()]
    log(f"   {result['requests']} requests, {result['rps']:.0f} req/s, p50 {result['p50_ms']:.0f} ms, "
        f"p99 {result['p99_ms']:.0f} ms, non-202 {result['non202']} {result['statuses'] or ''}")
    return result


def clear_orders() -> None:
    """Drop the intake phase's orders and queued tasks, so that the end-to-end phase starts with
    an idle queue and fresh capacity rows."""
    sql(
        "TRUNCATE channel_manager_order, channel_manager_orderline, channel_manager_orderstatuschange, "
        "channel_manager_orderwallet, wallets_wallet, wallets_asset, notifications_event, catalog_capacity, "
        "channel_manager_idempotencyrecord, channel_manager_issuancesignal, django_q_ormq, django_q_task CASCADE"
    )
    sql("VACUUM ANALYZE")


# ---- d. end to end -------------------------------------------------------------------------------


def steady_stream(port: int, key: str, rate: float, seconds: float, dates: list[str], threads: int = 12) -> dict:
    """Open loop: request k is due at start + k/rate whatever happened to the others; each of
    `threads` connections takes the next due request. Lateness (the client could not keep up)
    is reported."""
    total = int(rate * seconds)
    counter = itertools.count()
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    late: list[float] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2

    def worker() -> None:
        api = Api(port, key)
        while True:
            k = next(counter)
            if k >= total:
                break
            due = start + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            day = dates[k % len(dates)]
            slot = ("19:30", "21:00")[(k // len(dates)) % 2]
            reply = api.request("POST", "/channelManager", six_wallet_order(PARTNER_ID, f"E2E-{k}", day, slot))
            with lock:
                statuses[reply.status] = statuses.get(reply.status, 0) + 1
                latencies.append(reply.seconds)
                late.append(max(0.0, -delay))
        api.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - start
    return {
        "sent": total, "elapsed": elapsed, "statuses": statuses, "achieved_rate": total / max(elapsed, 1e-9),
        "client_p50_ms": (percentile(latencies, 0.5) or 0) * 1000,
        "client_p99_ms": (percentile(latencies, 0.99) or 0) * 1000,
        "late_p99_ms": (percentile(late, 0.99) or 0) * 1000,
    }


def wait_settled(timeout: float, qcluster) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not qcluster.alive():
            sys.exit(f"the qcluster exited with {qcluster.process.returncode}:\n{qcluster.output()}")
        left = sql_one("SELECT count(*) FROM channel_manager_order WHERE status = ANY(%s)", (list(IN_FLIGHT),))
        if not left:
            return time.monotonic() - started
        time.sleep(0.25)
    return -1.0


SETTLE_STATS = """
WITH settled AS (
    SELECT o.id, o.status, o.created_at, min(c.at) AS settled_at
    FROM channel_manager_order o
    JOIN channel_manager_orderstatuschange c ON c.order_id = o.id AND c.to_status IN ('Draft', 'Issued', 'Error')
    WHERE o.sell_to_order_reference LIKE 'E2E-%%'
    GROUP BY o.id
)
SELECT count(*),
       count(*) FILTER (WHERE status = 'Error'),
       extract(epoch FROM max(settled_at) - min(created_at)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - created_at)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - created_at)),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - created_at)),
       max(extract(epoch FROM settled_at - created_at))
FROM settled
"""


def e2e_phase(port: int, key: str, seconds: int, rate: float, dates: list[str], gunicorn_pid: int,
              workers: int, pgss: bool) -> dict:
    log(f"d. end to end: qcluster with Q_WORKERS={workers}, {rate:g} orders/s for {seconds} s, then settle")
    qcluster = start_qcluster(app_env(Q_WORKERS=str(workers)))
    try:
        # Wait for the cluster: a probe order must settle.
        api = Api(port, key)
        probe = api.request("POST", "/channelManager", six_wallet_order(PARTNER_ID, "PROBE-1", dates[-1], "21:00"))
        api.close()
        if probe.status != 202:
            sys.exit(f"probe order answered {probe.status}: {probe.body[:300]!r}")
        if wait_settled(60, qcluster) < 0:
            sys.exit(f"the probe order did not settle within 60 s:\n{qcluster.output()}")
        if pgss:
            reset_statements()
        meter = CpuMeter(gunicorn_pid, qcluster.pid)
        before = meter.snapshot()
        stream = steady_stream(port, key, rate, seconds, dates)
        settle_timeout = max(120.0, seconds * 6)
        drain = wait_settled(settle_timeout, qcluster)
        cpu = CpuMeter.split(before, meter.snapshot())
        if drain < 0:
            log("   not every order settled in time!")
        row = sql(SETTLE_STATS)[0]
        count, errors, span, p50, p90, p99, worst = row
        wallets = sql_one(
            "SELECT count(*) FROM wallets_wallet w JOIN channel_manager_orderwallet l ON l.wallet_id = w.id "
            "JOIN channel_manager_order o ON o.id = l.order_id "
            "WHERE o.sell_to_order_reference LIKE 'E2E-%%' AND w.minted_at IS NOT NULL"
        )
        issued = int(count) - int(errors)
        span = float(span or 0) or 1.0
        result = {
            "offered_rate": rate, "stream": stream, "settled": int(count), "errors": int(errors),
            "drain_after_stream_s": drain, "span_s": span, "settle_timeout_s": settle_timeout,
            "left_in_flight": int(sql_one("SELECT count(*) FROM channel_manager_order WHERE status = ANY(%s)",
                                          (list(IN_FLIGHT),))),
            "orders_per_s": int(count) / span, "wallets_per_s": int(wallets) / span,
            "wallets": int(wallets), "issued_or_draft": issued,
            "p50_s": float(p50 or 0), "p90_s": float(p90 or 0), "p99_s": float(p99 or 0), "max_s": float(worst or 0),
            "cpu": cpu,
        }
        if pgss:
            calls, without_tx = statement_calls()
            result["statements_per_order"] = calls / max(1, int(count))
            result["statements_per_order_no_tx"] = without_tx / max(1, int(count))
        log(f"   {count} settled ({errors} Error) in {span:.1f} s: {result['orders_per_s']:.0f} orders/s, "
            f"{result['wallets_per_s']:.0f} wallets/s, p50 {result['p50_s']:.2f} s, p99 {result['p99_s']:.2f} s")
        return result
    finally:
        qcluster.cleanup()


# ---- e. flat cost --------------------------------------------------------------------------------


def flat_phase(key: str) -> list[dict]:
    log("e. flat cost: statements per operation at 1, 6 and 500 wallets (CaptureQueriesContext)")
    env = app_env()
    env["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    result = subprocess.run([PY, "-m", "bench.flat_cost", key, PARTNER_ID], cwd=REPO, env=env,
                            capture_output=True, text=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("FLAT_JSON ")), None)
    if result.returncode != 0 or line is None:
        sys.exit(f"bench/flat_cost.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line[len("FLAT_JSON "):])


# ---- f. gate scans -------------------------------------------------------------------------------

SCANS_SINCE = "SELECT count(*) FROM wallets_gatescan WHERE id > %s"


def scan_setup(key: str, out_dir: Path, tickets: int, redeemed: int, devices: int) -> dict:
    """bench/scan_setup.py: tickets valid today, gate devices, the code lists."""
    result = subprocess.run(
        [PY, "-m", "bench.scan_setup", key, PARTNER_ID, str(out_dir), str(tickets), str(redeemed), str(devices)],
        cwd=REPO, env=app_env(ALLOWED_HOSTS="127.0.0.1,localhost,testserver"), capture_output=True, text=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("SCAN_JSON ")), None)
    if result.returncode != 0 or line is None:
        sys.exit(f"bench/scan_setup.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line[len("SCAN_JSON "):])


def wait_scans_quiet(since_id: int, timeout: float = 30) -> int:
    """Like wait_quiet: the scans logged after since_id, once their count stays put for a second."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = int(sql_one(SCANS_SINCE, (since_id,)))
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            break
        time.sleep(0.2)
    return last


def scan_checks(since_id: int, pre_redeemed: int) -> dict:
    """What the database says about the scans logged after since_id, and whether every accepted
    scan redeemed its own asset exactly once."""
    by_reason = {f"{result}:{reason or '-'}": int(n) for result, reason, n in sql(
        "SELECT result, reason, count(*) FROM wallets_gatescan WHERE id > %s GROUP BY 1, 2 ORDER BY 1, 2",
        (since_id,))}
    accepted, distinct_assets, redeemed_by_them = sql(
        "SELECT count(*), count(DISTINCT s.asset_id), count(a.id) FILTER (WHERE a.redeemed_at = s.scanned_at "
        "AND a.redeemed_by_id = s.device_id) FROM wallets_gatescan s LEFT JOIN wallets_asset a ON a.id = s.asset_id "
        "WHERE s.id > %s AND s.result = 'accepted'", (since_id,))[0]
    # Over the whole run (warm-up included): no asset accepted twice, and the used assets are
    # exactly the set-up's used ones plus one per accepted scan.
    accepted_twice = int(sql_one("SELECT count(*) FROM (SELECT asset_id FROM wallets_gatescan "
                                 "WHERE result = 'accepted' GROUP BY asset_id HAVING count(*) > 1) t"))
    all_accepted = int(sql_one("SELECT count(*) FROM wallets_gatescan WHERE result = 'accepted'"))
    all_redeemed = int(sql_one("SELECT count(*) FROM wallets_asset WHERE redeemed_at IS NOT NULL"))
    once = (int(accepted) == int(distinct_assets) == int(redeemed_by_them) and accepted_twice == 0
            and all_redeemed == pre_redeemed + all_accepted)
    return {
        "rows": sum(by_reason.values()), "by_reason": by_reason, "accepted_rows": int(accepted),
        "rejected_rows": sum(n for k, n in by_reason.items() if not k.startswith("accepted")),
        "accepted_distinct_assets": int(distinct_assets), "assets_redeemed_by_them": int(redeemed_by_them),
        "assets_accepted_twice": accepted_twice, "all_redeemed": all_redeemed, "all_accepted": all_accepted,
        "redeemed_once": once,
    }


def scan_phase(port: int, key: str, seconds: int, connections: int, tickets: int, pgss: bool,
               gunicorn_pid: int) -> dict:
    """POST /gate/scans under wrk (bench/gate_scan.lua): half fresh tickets (accepted), a quarter
    unknown codes, a quarter used tickets (both rejected)."""
    log(f"f. gate scans: set up {tickets} tickets valid today, then warm-up, then wrk -c {connections} "
        f"for {seconds} s (half accepted, half rejected)")
    threads = min(CORES, connections)
    warm_share = min(tickets // 5, 4000)
    pre_redeemed = 1000
    with tempfile.TemporaryDirectory(prefix="cm-scan-") as tmp:
        out = Path(tmp)
        setup = scan_setup(key, out, tickets + pre_redeemed, pre_redeemed, devices=4)
        sql("ANALYZE wallets_wallet, wallets_asset")  # what autovacuum would have done by now
        fresh = [ln for ln in (out / "fresh.txt").read_text().splitlines() if ln]
        (out / "warm.txt").write_text("\n".join(fresh[:warm_share]) + "\n")
        (out / "measure.txt").write_text("\n".join(fresh[warm_share:]) + "\n")
        log(f"   set-up {setup['seconds']:.1f} s: order {setup['order_id']} Issued with {setup['order_tickets']} "
            f"tickets for {setup['today']}, {setup['fresh']} unused and {setup['redeemed']} used tickets, "
            f"{len(setup['tokens'])} devices")
        tokens = ",".join(setup["tokens"])
        redeemed_file = str(out / "redeemed.txt")
        wrk_script(port, "gate_scan.lua", "/gate/scans", 3, connections,
                   [str(out / "warm.txt"), redeemed_file, tokens, str(threads)])
        before_id = int(sql_one("SELECT coalesce(max(id), 0) FROM wallets_gatescan"))
        wait_scans_quiet(before_id)
        before_id = int(sql_one("SELECT coalesce(max(id), 0) FROM wallets_gatescan"))
        if pgss:
            reset_statements()
        meter = CpuMeter(gunicorn_pid)
        before = meter.snapshot()
        data = wrk_script(port, "gate_scan.lua", "/gate/scans", seconds, connections,
                          [str(out / "measure.txt"), redeemed_file, tokens, str(threads)])
        rows = wait_scans_quiet(before_id)
        cpu = CpuMeter.split(before, meter.snapshot())
    checks = scan_checks(before_id, pre_redeemed)
    handled = max(1, data["requests"], rows)
    result = wrk_figures(data, cpu, handled, connections)
    rejected_answers = sum(data["reasons"].values())
    result.update(
        setup={k: v for k, v in setup.items() if k != "tokens"}, non200=data["unexpected"],
        accepted_answers=data["accepted"], rejected_answers=rejected_answers, reasons=data["reasons"],
        exhausted=data["exhausted"], db=checks,
        # wrk counts answers; the log also holds the scans still in flight when wrk stopped
        # (at most one per connection), which were served but never answered to wrk.
        rows_match=data["requests"] <= checks["rows"] <= data["requests"] + connections
        and data["accepted"] <= checks["accepted_rows"] <= data["accepted"] + connections,
    )
    if pgss:
        calls, without_tx = statement_calls()
        result["statements_per_request"] = calls / handled
        result["statements_per_request_no_tx"] = without_tx / handled
        result["top_statements"] = [(c / handled, q) for c, q in top_statements()]
    log(f"   {result['requests']} scans, {result['rps']:.0f} scans/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms; accepted {data['accepted']}, rejected {rejected_answers} "
        f"{data['reasons']}, non-200 {data['unexpected']} {data['statuses'] or ''}; log rows {checks['rows']}, "
        f"redeemed exactly once: {checks['redeemed_once']}")
    return result


# ---- the report ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def times_floor(value: float, floor_value: float | None) -> str:
    return f"{value / floor_value:.2f} × floor" if floor_value else "× floor: n/a"


def report(meta: dict, pgbench: dict, floor: dict | None, intake: dict | None, e2e: dict | None,
           flat: list[dict] | None, scan: dict | None = None, scan_floor: dict | None = None) -> str:
    lines = [
        f"OTA Channel Manager benchmark  {meta['when']}  git {meta['git']}",
        f"machine: {CORES} cores, load average before start {meta['loadavg']}; PostgreSQL {meta['pg_version']} "
        "(throwaway cluster: fsync=off, synchronous_commit=off)",
        f"gunicorn: {meta.get('gunicorn', 'not started')}"
        + ("; the floor: the same configuration, app bench.floor.wsgi" if floor else ""),
        f"settings: DEBUG off, LOG_LEVEL {meta['log_level']}, RATE_LIMIT_PER_PARTNER "
        f"{meta['rate_limit'] or 'off'}, SECURE_SSL_REDIRECT off (no TLS proxy in front)",
        "",
    ]
    if "tps" in pgbench:
        lines.append(f"a. pgbench reference  single-row INSERT commits/s, 8 clients: {pgbench['tps']:.0f} tps "
                     f"(avg latency {pgbench['latency_ms']:.2f} ms)")
    else:
        lines.append(f"a. pgbench reference  {pgbench.get('note')}")
    lines.append("")
    rows: list[tuple[str, str, str, str]] = []
    if floor:
        rows += [
            (f"b. floor: bare Django+DRF, 1 INSERT ({floor['connections']} conns)", f"{floor['rps']:.0f} req/s",
             "the reference", ""),
            ("   latency p50 / p90 / p99",
             f"{floor['p50_ms']:.0f} / {floor['p90_ms']:.0f} / {floor['p99_ms']:.0f} ms", "", ""),
            ("   non-201 answers", f"{floor['non201']} of {floor['requests']} {floor['statuses'] or ''}".strip(),
             "0", verdict(floor["non201"] == 0 and not floor["socket_errors"])),
        ]
        if floor["socket_errors"]:
            rows.append(("   socket errors (wrk)", str(floor["socket_errors"]), "none", "MISS"))
        if "statements_per_request" in floor:
            rows.append(("   SQL statements / request",
                         f"{floor['statements_per_request']:.1f} ({floor['statements_per_request_no_tx']:.1f} "
                         "w/o BEGIN/COMMIT/SAVEPOINT)", "pg_stat_statements*", ""))
        rows.append(("   CPU seconds over the phase", _cpu_text(floor["cpu"]), "", ""))
        rows.append(("   CPU ms per request", f"gunicorn {floor['gunicorn_cpu_ms_per_request']:.1f}, postgres "
                     f"{floor['postgres_cpu_ms_per_request']:.1f}", "", ""))
    if intake:
        ratio = intake.get("x_floor")
        rows += [
            (f"c. intake throughput ({intake['connections']} conns)",
             f"{intake['rps']:.0f} req/s ({times_floor(intake['rps'], floor and floor['rps'])})",
             f">= {TARGETS['intake_x_floor']:g} × floor",
             verdict(ratio >= TARGETS["intake_x_floor"]) if ratio is not None else "n/a (floor skipped)"),
            ("   latency p50 / p90 / p99",
             f"{intake['p50_ms']:.0f} / {intake['p90_ms']:.0f} / {intake['p99_ms']:.0f} ms",
             f"p99 <= {TARGETS['intake_p99_ms']} ms", verdict(intake["p99_ms"] <= TARGETS["intake_p99_ms"])),
            ("   non-202 answers", f"{intake['non202']} of {intake['requests']} {intake['statuses'] or ''}".strip(),
             "0", verdict(intake["non202"] == 0 and not intake["socket_errors"])),
        ]
        if intake["socket_errors"]:
            rows.append(("   socket errors (wrk)", str(intake["socket_errors"]), "none", "MISS"))
        if "statements_per_request" in intake:
            rows.append(("   SQL statements / request",
                         f"{intake['statements_per_request']:.1f} ({intake['statements_per_request_no_tx']:.1f} "
                         "w/o BEGIN/COMMIT/SAVEPOINT)", "pg_stat_statements*", ""))
        rows.append(("   CPU seconds over the phase", _cpu_text(intake["cpu"]), "", ""))
        cpu_ms = (f"gunicorn {intake['gunicorn_cpu_ms_per_request']:.1f}, postgres "
                  f"{intake['postgres_cpu_ms_per_request']:.1f}")
        if floor:
            cpu_ms += (f" ({times_floor(intake['gunicorn_cpu_ms_per_request'], floor['gunicorn_cpu_ms_per_request'])},"
                       f" {times_floor(intake['postgres_cpu_ms_per_request'], floor['postgres_cpu_ms_per_request'])})")
        rows.append(("   CPU ms per request", cpu_ms, "less noisy than req/s", ""))
    if e2e:
        rows += [
            ("d. end to end: orders settled / s", f"{e2e['orders_per_s']:.0f} (offered {e2e['offered_rate']:g}/s)",
             f">= {TARGETS['e2e_orders_per_s']}", verdict(e2e["orders_per_s"] >= TARGETS["e2e_orders_per_s"])),
            ("   wallets minted / s", f"{e2e['wallets_per_s']:.0f}", f">= {TARGETS['e2e_wallets_per_s']}",
             verdict(e2e["wallets_per_s"] >= TARGETS["e2e_wallets_per_s"])),
            ("   submit-to-settled p50", f"{e2e['p50_s']:.2f} s", f"< {TARGETS['e2e_p50_s']:g} s",
             verdict(e2e["p50_s"] < TARGETS["e2e_p50_s"])),
            ("   submit-to-settled p99", f"{e2e['p99_s']:.2f} s", f"< {TARGETS['e2e_p99_s']:g} s",
             verdict(e2e["p99_s"] < TARGETS["e2e_p99_s"])),
            ("   submit-to-settled p90 / max", f"{e2e['p90_s']:.2f} / {e2e['max_s']:.2f} s", "", ""),
            ("   orders settled (Error)", f"{e2e['settled']} ({e2e['errors']}); answers {e2e['stream']['statuses']}",
             "all 202, 0 Error", verdict(e2e["errors"] == 0 and set(e2e["stream"]["statuses"]) == {202})),
            ("   drain after the stream stopped", _drain_text(e2e), "", ""),
            ("   offered / achieved send rate", f"{e2e['offered_rate']:g} / {e2e['stream']['achieved_rate']:.0f} "
             "orders/s", "", verdict(e2e["stream"]["achieved_rate"] >= 0.95 * e2e["offered_rate"])),
            ("   client createOrder p50 / p99", f"{e2e['stream']['client_p50_ms']:.0f} / "
             f"{e2e['stream']['client_p99_ms']:.0f} ms (sender lateness p99 {e2e['stream']['late_p99_ms']:.0f} ms)",
             "", ""),
        ]
        if "statements_per_order" in e2e:
            rows.append(("   SQL statements / order (all processes)",
                         f"{e2e['statements_per_order']:.1f} ({e2e['statements_per_order_no_tx']:.1f} w/o tx control)",
                         "pg_stat_statements*", ""))
        rows.append(("   CPU seconds over the phase", _cpu_text(e2e["cpu"]), "", ""))
        per_order = {k: 1000 * v / max(1, e2e["settled"]) for k, v in e2e["cpu"].items()
                     if k in ("gunicorn", "postgres", "qcluster")}
        rows.append(("   CPU ms per order", ", ".join(f"{k} {v:.1f}" for k, v in per_order.items()),
                     "less noisy than orders/s", ""))
    if scan:
        rows += scan_rows(scan, scan_floor)
    width = max(len(r[0]) for r in rows) if rows else 30
    vwidth = max(len(r[1]) for r in rows) if rows else 20
    for name, value, target, ok in rows:
        lines.append(f"{name:<{width}}  {value:<{vwidth}}  {target:<22} {ok}".rstrip())
    if flat:
        lines += ["", "e. flat cost: SQL statements per operation (CaptureQueriesContext, in-process)",
                  f"   {'wallets':>7}  {'createOrder':>11}  {'issuance':>8}  {'getOrder':>8}"]
        for entry in flat:
            lines.append(f"   {entry['wallets']:>7}  {entry['create']:>11}  {entry['issue']:>8}  {entry['get']:>8}"
                         f"   ({entry['status']}, {entry['minted']} wallets minted)")
        flat_ok = all(
            len({e[op] for e in flat if e["wallets"] > 1}) == 1 for op in ("create", "issue", "get")
        )
        lines.append(f"   flat from 6 to 500 wallets (same 3 lines): {verdict(flat_ok)}")
    if scan and scan.get("top_statements"):
        lines += ["", "gate scans: statements per scan, most frequent (pg_stat_statements)"]
        lines += [f"   {per:5.2f}  {query}" for per, query in scan["top_statements"]]
    if intake and intake.get("top_statements"):
        lines += ["", "intake: statements per request, most frequent (pg_stat_statements)"]
        lines += [f"   {per:5.2f}  {query}" for per, query in intake["top_statements"]]
    lines += ["", "* pg_stat_statements calls in the phase / requests (or orders), leaving out the foreign-key checks",
              "  that PostgreSQL's triggers run per inserted row (SELECT 1 FROM ONLY ... FOR KEY SHARE).",
              "× floor: this run's figure over the floor's (same gunicorn configuration, connections, seconds and",
              "  PostgreSQL): absolute figures on a shared machine are noisy, the ratio is what holds.",
              "CPU 'other' is everything else the machine ran meanwhile: when it is large, the figures are noisy."]
    return "\n".join(lines) + "\n"


def scan_rows(scan: dict, floor: dict | None) -> list[tuple[str, str, str, str]]:
    """The report's rows for phase f; `floor` is the floor measured at the scan's connections."""
    db = scan["db"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(scan["reasons"].items()))
    db_reasons = ", ".join(f"{k.split(':')[1]} {v}" for k, v in db["by_reason"].items() if not k.startswith("accepted"))
    half = scan["accepted_answers"] / max(1, scan["accepted_answers"] + scan["rejected_answers"])
    rows = [
        (f"f. gate scans ({scan['connections']} conns)",
         f"{scan['rps']:.0f} scans/s ({times_floor(scan['rps'], floor and floor['rps'])})",
         f">= {TARGETS['scan_per_s']} /s", verdict(scan["rps"] >= TARGETS["scan_per_s"])),
        ("   latency p50 / p90 / p99",
         f"{scan['p50_ms']:.1f} / {scan['p90_ms']:.1f} / {scan['p99_ms']:.1f} ms",
         f"p99 < {TARGETS['scan_p99_ms']} ms", verdict(scan["p99_ms"] < TARGETS["scan_p99_ms"])),
        ("   answers accepted / rejected", f"{scan['accepted_answers']} / {scan['rejected_answers']} ({reasons})",
         "half each", verdict(abs(half - 0.5) < 0.01 and not scan["exhausted"])),
        ("   non-200 answers", f"{scan['non200']} of {scan['requests']} {scan['statuses'] or ''}".strip(),
         "0", verdict(scan["non200"] == 0 and not scan["socket_errors"])),
        ("   scan log rows: accepted / rejected",
         f"{db['accepted_rows']} / {db['rejected_rows']} ({db_reasons})", "= answers (+ in flight)",
         verdict(scan["rows_match"])),
        ("   each accepted asset redeemed once",
         f"{db['assets_redeemed_by_them']} of {db['accepted_rows']} accepted scans; {db['assets_accepted_twice']} "
         "assets accepted twice", "all; 0", verdict(db["redeemed_once"])),
    ]
    if scan["socket_errors"]:
        rows.append(("   socket errors (wrk)", str(scan["socket_errors"]), "none", "MISS"))
    if scan["exhausted"]:
        rows.append(("   fresh tickets ran out", f"{scan['exhausted']} scans sent unknown codes instead",
                     "0: raise --scan-tickets", "MISS"))
    if "statements_per_request" in scan:
        rows.append(("   SQL statements / scan",
                     f"{scan['statements_per_request']:.1f} ({scan['statements_per_request_no_tx']:.1f} "
                     "w/o BEGIN/COMMIT/SAVEPOINT)", "pg_stat_statements*", ""))
    rows.append(("   CPU seconds over the phase", _cpu_text(scan["cpu"]), "", ""))
    cpu_ms = f"gunicorn {scan['gunicorn_cpu_ms_per_request']:.2f}, postgres {scan['postgres_cpu_ms_per_request']:.2f}"
    if floor:
        cpu_ms += (f" ({times_floor(scan['gunicorn_cpu_ms_per_request'], floor['gunicorn_cpu_ms_per_request'])},"
                   f" {times_floor(scan['postgres_cpu_ms_per_request'], floor['postgres_cpu_ms_per_request'])})")
        rows.insert(2, (f"   the floor at {floor['connections']} conns ({floor['requests']} requests)",
                        f"{floor['rps']:.0f} req/s, p50 / p99 {floor['p50_ms']:.1f} / {floor['p99_ms']:.1f} ms, "
                        f"CPU ms gunicorn {floor['gunicorn_cpu_ms_per_request']:.2f}, "
                        f"postgres {floor['postgres_cpu_ms_per_request']:.2f}", "the reference", ""))
    rows.append(("   CPU ms per scan", cpu_ms, "less noisy than scans/s", ""))
    return rows


def summary(floor: dict | None, intake: dict | None, e2e: dict | None, scan: dict | None = None) -> dict:
    """The headline figures, for comparing runs: the ratio to the floor, not the absolute req/s."""
    out: dict = {"targets": TARGETS}
    if floor:
        out.update(floor_rps=floor["rps"], floor_p99_ms=floor["p99_ms"])
    if intake:
        out.update(intake_rps=intake["rps"], intake_x_floor=intake.get("x_floor"), intake_p99_ms=intake["p99_ms"])
    if e2e:
        out.update(e2e_orders_per_s=e2e["orders_per_s"], e2e_p50_s=e2e["p50_s"], e2e_p99_s=e2e["p99_s"])
    if scan:
        out.update(scan_per_s=scan["rps"], scan_x_floor=scan.get("x_floor"), scan_p50_ms=scan["p50_ms"],
                   scan_p99_ms=scan["p99_ms"], scan_redeemed_once=scan["db"]["redeemed_once"])
    return out


def _drain_text(e2e: dict) -> str:
    if e2e["drain_after_stream_s"] >= 0:
        return f"{e2e['drain_after_stream_s']:.1f} s"
    return f"NOT all settled: gave up after {e2e['settle_timeout_s']:.0f} s, {e2e['left_in_flight']} still in flight"


def _cpu_text(cpu: dict[str, float]) -> str:
    parts = [f"{k} {v:.1f}" for k, v in cpu.items() if k not in ("wall", "machine")]
    return ", ".join(parts) + f" (of {cpu['wall'] * CORES:.0f} available)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intake-seconds", type=int, default=int(os.environ.get("BENCH_INTAKE_SECONDS", 20)))
    parser.add_argument("--e2e-seconds", type=int, default=int(os.environ.get("BENCH_E2E_SECONDS", 20)))
    parser.add_argument("--e2e-rate", type=float, default=float(os.environ.get("BENCH_E2E_RATE", 150)))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--q-workers", type=int, default=int(os.environ.get("Q_WORKERS") or CORES))
    parser.add_argument("--scan-seconds", type=int, default=int(os.environ.get("BENCH_SCAN_SECONDS", 20)))
    parser.add_argument("--scan-connections", type=int, default=16)
    parser.add_argument("--scan-tickets", type=int, default=30000,
                        help="unused tickets set up for the scan phase (half the scans use one each)")
    parser.add_argument("--skip", action="append", default=[], choices=PHASES)
    parser.add_argument("--phases", type=lambda v: [p.strip() for p in v.split(",") if p.strip()],
                        default=list(PHASES), help=f"comma-separated, of {','.join(PHASES)} (default: all)")
    args = parser.parse_args()
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}: choose from {', '.join(PHASES)}")
    args.skip = sorted(set(args.skip) | (set(PHASES) - set(args.phases)))
    require_env()
    os.chdir(REPO)

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    meta = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git + ("+dirty" if dirty else ""),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    log("setup: migrate, load the demo catalog, create partner 'bench'")
    key = setup_database(PARTNER_ID, "Bench")
    meta["pg_version"] = sql_one("SHOW server_version")
    pgss_note = enable_pg_stat_statements()
    pgss = pgss_note is None
    if pgss_note:
        log(f"   note: {pgss_note}")
    dates = sale_dates()

    pgbench = {"note": "skipped"}
    if "pgbench" not in args.skip:
        log(f"a. pgbench reference: 8 clients, {args.pgbench_seconds} s")
        pgbench = pgbench_reference(args.pgbench_seconds)
        log(f"   {pgbench}")

    flat = None if "flat" in args.skip else flat_phase(key)
    floor = None
    if "floor" not in args.skip:
        if "intake" not in args.skip or "scan" in args.skip:
            floor = floor_phase(args.intake_seconds, args.connections, dates[0], pgss)
    scan_floor = None
    if "floor" not in args.skip and "scan" not in args.skip:
        # The scan's own reference: the floor at the scan's connections and seconds.
        if floor and (floor["connections"], args.intake_seconds) == (args.scan_connections, args.scan_seconds):
            scan_floor = floor
        else:
            scan_floor = floor_phase(args.scan_seconds, args.scan_connections, dates[0], pgss)

    port = free_port()
    env = app_env(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    gunicorn = start_gunicorn(port, env)
    meta["gunicorn"] = " ".join(gunicorn.argv[2:])
    meta["log_level"] = env["LOG_LEVEL"]
    meta["rate_limit"] = env["RATE_LIMIT_PER_PARTNER"]
    intake = e2e = scan = None
    try:
        if "intake" not in args.skip:
            intake = intake_phase(port, key, args.intake_seconds, args.connections, dates, pgss, gunicorn.pid)
        if "e2e" not in args.skip:
            clear_orders()
            e2e = e2e_phase(port, key, args.e2e_seconds, args.e2e_rate, dates, gunicorn.pid, args.q_workers, pgss)
        if "scan" not in args.skip:
            scan = scan_phase(port, key, args.scan_seconds, args.scan_connections, args.scan_tickets, pgss,
                              gunicorn.pid)
    finally:
        gunicorn.cleanup()
    if intake and floor:
        intake["x_floor"] = intake["rps"] / floor["rps"]
    if scan and scan_floor:
        scan["x_floor"] = scan["rps"] / scan_floor["rps"]

    text = report(meta, pgbench, floor, intake, e2e, flat, scan, scan_floor)
    print("\n" + text, end="")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.txt").write_text(text, encoding="utf-8")
    (OUT / "latest.json").write_text(json.dumps(
        {"meta": meta, "summary": summary(floor, intake, e2e, scan), "pgbench": pgbench, "floor": floor,
         "intake": intake, "e2e": e2e, "scan": scan, "scan_floor": scan_floor,
         "flat": [{k: v for k, v in e.items() if k != "sql"} for e in flat or []]}, indent=2, default=str))
    log(f"written to {OUT / 'latest.txt'}")


if __name__ == "__main__":
    main()
