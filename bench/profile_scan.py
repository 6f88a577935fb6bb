"""Profile POST /gate/scans in one process (no gunicorn, no wrk): the full middleware and
Django's WSGI handler, the bench's scan mix (unused, unknown, unused, used), statements per kind
and a cProfile on a CPU clock. Under .ci/with-postgres (make profile-scan is not a target:
`bash .ci/with-postgres .venv/bin/python -m bench.profile_scan [SCANS] [OUT.prof] >/dev/null`:
the access log goes to stdout, the figures to stderr; the profile is printed and saved only
when OUT.prof is given)."""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PY, app_env, setup_database

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def main() -> None:
    scans = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    prof_out = sys.argv[2] if len(sys.argv) > 2 else None
    env = app_env()
    os.environ.update(env)
    key = setup_database("bench", "Bench")
    import subprocess

    out = Path(tempfile.mkdtemp(prefix="cm-prof-"))
    result = subprocess.run([PY, "-m", "bench.scan_setup", key, "bench", str(out), str(scans + 1000), "1000", "4"],
                            env=env, capture_output=True, text=True, check=True)
    setup = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("SCAN_JSON"))[len("SCAN_JSON"):])
    fresh = [ln for ln in (out / "fresh.txt").read_text().splitlines() if ln]
    used = [ln for ln in (out / "redeemed.txt").read_text().splitlines() if ln]

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    connection.cursor().execute("ANALYZE wallets_wallet, wallets_asset")
    app = WSGIHandler()
    tokens = setup["tokens"]
    rng = random.Random(1)

    def call(code: str, token: str) -> dict:
        body = json.dumps({"code": code}).encode()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/gate/scans", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_HOST": "127.0.0.1",
            "wsgi.errors": sys.stderr,
        }
        status = []
        chunks = app(environ, lambda s, h, *a: status.append(s))
        payload = b"".join(chunks)
        assert status[0].startswith("200"), (status, payload)
        return json.loads(payload)

    def mix(i: int) -> str:
        kind = i % 4
        if kind in (0, 2):
            return fresh.pop()
        if kind == 1:
            return "".join(rng.choice(ALPHABET) for _ in range(16))
        return rng.choice(used)

    # Warm-up, then statements per kind.
    for i in range(40):
        call(mix(i), tokens[i % 4])
    for i, name in ((0, "accepted"), (1, "unknown"), (3, "already_redeemed")):
        with CaptureQueriesContext(connection) as ctx:
            answer = call(mix(i), tokens[0])
        print(f"{name}: {answer['result']}/{answer['reason']}: {len(ctx.captured_queries)} statements",
              file=sys.stderr)
        for q in ctx.captured_queries:
            print("   ", q["sql"][:160], file=sys.stderr)
    n = min(scans, len(fresh) * 2 - 10) // 2
    # Without the profiler first: the CPU a scan costs this process, and its PostgreSQL backend.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = Path(f"/proc/{cursor.fetchone()[0]}/stat")

    def backend_cpu() -> float:
        fields = backend.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    cpu0, pg0 = time.process_time(), backend_cpu()
    for i in range(n):
        call(mix(i), tokens[i % 4])
    cpu, pg = time.process_time() - cpu0, backend_cpu() - pg0
    print(f"{n} scans: python CPU {cpu / n * 1000:.2f} ms/scan (no profiler), PostgreSQL backend "
          f"{pg / n * 1000:.2f} ms/scan", file=sys.stderr)
    if not prof_out:
        return
    profiler = cProfile.Profile(time.process_time)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    profiler.enable()
    for i in range(n):
        call(mix(i), tokens[i % 4])
    profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{n} scans: python CPU {cpu / n * 1000:.2f} ms/scan (with profiler), wall {wall / n * 1000:.2f} ms/scan")
    stats = pstats.Stats(profiler)
    stats.dump_stats(prof_out)
    stats.stream = sys.stderr
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
