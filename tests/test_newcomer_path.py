"""What a newcomer does first: `make run` on the embedded SQLite database, an order through the
API with the printed demo key, Ctrl-C, and `make run` again on the same data."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import pytest

from tests.processes import kill_process_group

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
DEMO_CATALOG = REPO / "catalog" / "data" / "demo_catalog.json"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
SETTLE_TIMEOUT = 30.0
IN_FLIGHT = {"Submitted", "Scheduled", "Processing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venue_today() -> dt.date:
    zone = "Europe/Amsterdam"
    if DEMO_CATALOG.is_file():
        zone = json.loads(DEMO_CATALOG.read_text())["venue"].get("timeZone", zone)
    return dt.datetime.now(ZoneInfo(zone)).date()


def call(method: str, url: str, key: str, body: dict | None = None):
    """(status, headers, parsed JSON body or None) for one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, headers, parsed


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, name) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        table[int(entry.name)] = (int(ppid), state, name)
    return table


def descendants(pid: int) -> set[int]:
    table = process_table()
    found: set[int] = set()
    parents = {pid}
    while parents:
        children = {p for p, (ppid, _, _) in table.items() if ppid in parents and p not in found}
        found |= children
        parents = children
    return found


def qcluster_queues(pid: int) -> list[str]:
    """Q_CLUSTER_NAME of each `manage.py qcluster` run_demo started itself ("" when unset: the
    issuance queue), read from /proc. Only its own children: a qcluster's forked workers share
    its command line."""
    queues = []
    for child in [p for p, (ppid, _, _) in process_table().items() if ppid == pid]:
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"qcluster" in argv and any(a.endswith(b"manage.py") for a in argv):
            names = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"Q_CLUSTER_NAME=")]
            queues.append(names[0] if names else "")
    return queues


def alive(pids: set[int]) -> list[str]:
    """The given processes that still run (zombies do not count), as 'pid name'."""
    table = process_table()
    return [f"{p} {table[p][2]}" for p in sorted(pids) if p in table and table[p][1] != "Z"]


class Demo:
    """One `manage.py run_demo`, as `make run` starts it, in its own process group."""

    def __init__(self, data_dir: Path, run: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"run_demo.{run}.log"
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        env.update(
            SQLITE_PATH=str(data_dir / "db.sqlite3"),
            PORT=str(self.port),
            CM_DEV="1",
            WEBHOOK_ALLOW_PRIVATE_TARGETS="1",
            PYTHONUNBUFFERED="1",
        )
        env.pop("SECRET_KEY", None)
        env.pop("PUBLIC_BASE_URL", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_demo"],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"run_demo exited with {self.process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.25)
        pytest.fail(f"nothing answered on port {self.port} within {READY_TIMEOUT} s:\n{self.output()}")

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the terminal's process group; the exit status. Afterwards no process
        that run_demo started is left running."""
        children = descendants(self.process.pid)
        assert children, "run_demo runs the web server and the workers as child processes"
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run_demo did not stop within {STOP_TIMEOUT} s of SIGINT:\n{self.output()}")
        deadline = time.monotonic() + 5
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alive(children) == [], self.output()
        return status

    def kill(self) -> None:
        """Clean up after a failed test: everything run_demo started, then run_demo."""
        for pid in descendants(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_process_group(self.process)


@pytest.fixture
def demo_runs(tmp_path):
    started: list[Demo] = []

    def start() -> Demo:
        demo = Demo(tmp_path, len(started) + 1)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        if demo.process.poll() is None:
            demo.kill()


def test_make_run_serves_the_demo_and_keeps_its_data_across_restarts(tmp_path, demo_runs):
    key_file = tmp_path / "demo_api_key"

    first = demo_runs()
    first.wait_until_serving()
    assert sorted(qcluster_queues(first.process.pid)) == ["", "webhooks"], first.output()
    assert key_file.is_file(), first.output()
    key = key_file.read_text().strip()
    assert key in first.output(), "the demo API key is printed"

    reference = f"NEWCOMER-{time.time_ns()}"
    status, headers, order = call(
        "POST",
        f"{first.base}/channelManager",
        key,
        {
            "partnerId": "demo-travel",
            "sellToOrderReference": reference,
            "items": [
                {
                    "itemId": "DAY-ADULT",
                    "quantity": 2,
                    "visitDate": (venue_today() + dt.timedelta(days=7)).isoformat(),
                }
            ],
        },
    )
    assert status == 202, order
    assert headers.get("Location"), headers
    order_url = urljoin(first.base, headers["Location"])
    assert order["sellToOrderReference"] == reference
    order_id = order["orderId"]
    assert order_url.endswith(f"/channelManager/{order_id}")

    status, _, fetched = call("GET", order_url, key)
    assert status == 200, fetched
    assert fetched["orderId"] == order_id

    # The issuance workers run beside the web server: without a paymentReference the order
    # settles in Draft by itself.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while fetched["status"] in IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.5)
        status, _, fetched = call("GET", order_url, key)
        assert status == 200, fetched
    assert fetched["status"] == "Draft", (fetched, first.output())

    assert first.interrupt() == 0, first.output()

    second = demo_runs()
    second.wait_until_serving()
    assert key_file.read_text().strip() == key, "the demo key is reused"
    status, _, fetched = call("GET", f"{second.base}/channelManager/{order_id}", key)
    assert status == 200, fetched
    assert fetched["orderId"] == order_id
    assert fetched["sellToOrderReference"] == reference
    assert fetched["status"] == "Draft"

    assert second.interrupt() == 0, second.output()
