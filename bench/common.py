"""What the benchmark and the fault drills share: the throwaway PostgreSQL that `.ci/with-postgres`
started, the app's processes (gunicorn, the issuance and the webhook qcluster) started the way
production starts them, a small HTTP client, the demo order bodies, and CPU accounting from /proc.

Everything here runs in the orchestrating process, which never imports Django (the drills do, in
their own module); the app runs in child processes, each in its own process group so that it and
whatever it forked can be killed as a whole.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from channel_manager.kernel.net import port_answers

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
CATALOG = REPO / "catalog" / "data" / "demo_catalog.json"
VENUE_TZ = "Europe/Amsterdam"  # the demo catalog's venue.timeZone
SETTLED = ("Draft", "Issued", "Error")
IN_FLIGHT = ("Submitted", "Scheduled", "Processing")
CORES = os.cpu_count() or 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
# One SECRET_KEY for every process of a run: the web server signs the tasks the qcluster reads.
RUN_SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)


def log(message: str) -> None:
    print(message, flush=True)


def require_env() -> dict[str, str]:
    """The variables .ci/with-postgres exports; refuse to run against anything else."""
    names = ("DATABASE_URL", "PGBIN", "CM_PG_DATA", "CM_PG_CTL_RESTART")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        sys.exit(f"{', '.join(missing)} not set: run this under .ci/with-postgres (make bench / make faults)")
    return {n: os.environ[n] for n in names}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def venue_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(VENUE_TZ)).date()


# ---- the database ------------------------------------------------------------------------------


def db(autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=autocommit)


def sql(query: str, params: tuple | dict | None = None) -> list[tuple]:
    with db() as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def sql_one(query: str, params: tuple | dict | None = None):
    rows = sql(query, params)
    return rows[0][0] if rows and len(rows[0]) == 1 else (rows[0] if rows else None)


def wait_for_db(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            sql("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def restart_postgres() -> float:
    """CM_PG_CTL_RESTART (pg_ctl restart -m fast: clients are disconnected). Seconds it took."""
    started = time.monotonic()
    subprocess.run(os.environ["CM_PG_CTL_RESTART"], shell=True, check=True, stdout=subprocess.DEVNULL)
    wait_for_db()
    return time.monotonic() - started


def postmaster_pid() -> int | None:
    try:
        return int((Path(os.environ["CM_PG_DATA"]) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ---- the app's processes -------------------------------------------------------------------------


def app_env(**extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, a real SECRET_KEY, no CM_DEV, JSON logs at INFO), except:

    - SECURE_SSL_REDIRECT=0: in production TLS ends at the proxy in front of gunicorn; here the
      clients talk plain http to gunicorn directly;
    - RATE_LIMIT_PER_PARTNER empty (off) unless set in the environment: the load comes from one
      partner and would otherwise measure the limiter (set it to measure with the limiter on).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("CM_DEV", "DEBUG")}
    env.update(
        DJANGO_SETTINGS_MODULE=env.get("DJANGO_SETTINGS_MODULE") or "channel_manager.settings",
        SECRET_KEY=RUN_SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL=env.get("LOG_LEVEL") or "INFO",
        SECURE_SSL_REDIRECT="0",
        RATE_LIMIT_PER_PARTNER=env.get("RATE_LIMIT_PER_PARTNER", ""),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args], cwd=REPO, env=env or app_env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def setup_database(partner_id: str, name: str) -> str:
    """Migrate, load the demo catalog, create a partner; its API key."""
    manage("migrate", "--noinput", "-v", "0")
    manage("load_catalog", str(CATALOG))
    out = manage("create_partner", partner_id, "--name", name, "--json")
    return json.loads(out.strip().splitlines()[-1])["apiKey"]


class Child:
    """A child process in its own process group, its output in a temporary log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = Path(tempfile.mkstemp(prefix=f"cm-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill9(self) -> None:
        """SIGKILL the whole group (master, workers, monitor, pusher): a crash, not a stop."""
        self.signal_group(signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, timeout: float = 10) -> None:
        if self.process is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # whatever is left in the group
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


PRODUCT_WSGI = "channel_manager.wsgi"
PRODUCTION_CONFIG = REPO / "channel_manager" / "deploy" / "gunicorn.conf.py"


def gunicorn_argv(port: int, workers: int | None = None, threads: int | None = None,
                  app: str = PRODUCT_WSGI) -> list[str]:
    """How production serves `app` (channel_manager.wsgi, or the benchmark's floor, bench/floor):
    production's configuration file (channel_manager/deploy/gunicorn.conf.py: its workers,
    threads, recycling and limits), bound here, with a short graceful timeout and only warnings
    from gunicorn itself; `workers`/`threads` and BENCH_GUNICORN_ARGS override."""
    extra = shlex.split(os.environ.get("BENCH_GUNICORN_ARGS", ""))
    shape = ["--workers", str(workers)] if workers else []
    shape += ["--threads", str(threads)] if threads else []
    return [
        PY, "-m", "gunicorn", app, "-c", str(PRODUCTION_CONFIG), *shape,
        "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "5",
        "--log-level", "warning",
        *extra,
    ]


def start_gunicorn(port: int, env: dict[str, str], workers: int | None = None, threads: int | None = None,
                   app: str = PRODUCT_WSGI) -> Child:
    child = Child("gunicorn", gunicorn_argv(port, workers, threads, app), env)
    deadline = time.monotonic() + 60
    while not port_answers(port):
        if not child.alive():
            sys.exit(f"gunicorn exited with {child.process.returncode}:\n{child.output()}")
        if time.monotonic() > deadline:
            child.cleanup()
            sys.exit("gunicorn did not answer within 60 s")
        time.sleep(0.2)
    return child


WEBHOOK_QUEUE = "webhooks"  # settings.WEBHOOK_QUEUE (this process does not import Django)


def start_qcluster(env: dict[str, str], queue: str | None = None) -> Child:
    """`manage.py qcluster` as production starts it: the issuance cluster (queue None), or the
    webhook cluster (queue WEBHOOK_QUEUE: Q_CLUSTER_NAME=webhooks)."""
    cluster_env = {k: v for k, v in env.items() if k != "Q_CLUSTER_NAME"}
    if queue:
        cluster_env["Q_CLUSTER_NAME"] = queue
    return Child(f"qcluster-{queue}" if queue else "qcluster", [PY, "manage.py", "qcluster"], cluster_env)


def start_webhook_qcluster(env: dict[str, str]) -> Child:
    return start_qcluster(env, WEBHOOK_QUEUE)


# ---- HTTP ----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int  # 0: no answer (connection refused, reset, timed out)
    body: bytes = b""
    content_type: str = ""
    error: str = ""
    seconds: float = 0.0

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def code(self) -> str | None:
        data = self.json()
        return data.get("code") if isinstance(data, dict) else None


@dataclass
class Api:
    """One keep-alive connection to the app (use one per thread). Never raises on transport
    errors: a Reply with status 0 says what happened."""

    port: int
    key: str
    timeout: float = 30.0
    conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    def request(self, method: str, path: str, body=None, headers: dict[str, str] | None = None) -> Reply:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        all_headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        started = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(method, path, body=data, headers=all_headers)
            response = self.conn.getresponse()
            payload = response.read()
            reply = Reply(response.status, payload, response.getheader("Content-Type", ""),
                          seconds=time.monotonic() - started)
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return reply
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Reply(0, error=f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - started)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- order bodies --------------------------------------------------------------------------------

SHOW_SLOTS = ("19:30", "21:00")


def sale_dates(days: int = 365) -> list[str]:
    """Visit dates from tomorrow on, inside the demo catalog's sale window (DAY-ADULT is on sale
    until 2027-12-31), so that orders spread over many capacity rows."""
    first = venue_today() + dt.timedelta(days=1)
    last = min(first + dt.timedelta(days=days - 1), dt.date(2027, 12, 31))
    if last < first:
        sys.exit("the demo catalog's sale window (until 2027-12-31) is over: update bench/common.py")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def six_wallet_order(partner_id: str, reference: str, day: str, slot: str, payment: str | None = "PAY-1") -> dict:
    """The benchmark's order: 3 lines, 6 wallets (2 day tickets, 1 family group of 3, 3 park-and-
    show packages), 5 DAY-ADULT and 3 SHOW-EVENING admissions."""
    body = {
        "partnerId": partner_id,
        "sellToOrderReference": reference,
        "customer": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
        "items": [
            {"itemId": "DAY-ADULT", "quantity": 2, "visitDate": day},
            {"itemId": "FAMILY-GROUP", "quantity": 3, "visitDate": day},
            {"itemId": "PARK-AND-SHOW", "quantity": 3, "visitDate": day, "visitTime": slot},
        ],
    }
    if payment:
        body["paymentReference"] = payment
    return body


# ---- CPU accounting ------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def tree_cpu_seconds(root: int | None) -> float:
    """utime+stime of a process and its live descendants, plus what its reaped children used
    (cutime+cstime): so processes that came and went during a phase are counted too."""
    if root is None:
        return 0.0
    tree = children_of()
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        # after the state field: utime=11, stime=12, cutime=13, cstime=14 (0-based here)
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        stack.extend(tree.get(pid, []))
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """All CPUs' non-idle time since boot (from /proc/stat), for the 'everything else' share."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def self_children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
