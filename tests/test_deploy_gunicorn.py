"""Production's gunicorn configuration (channel_manager/deploy/gunicorn.conf.py): sync workers by
default (bench/README.md, "how the targets were met", says why), gthread when threads are asked
for. Read in a child process: the file sets environment variables on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parent.parent / "channel_manager" / "deploy" / "gunicorn.conf.py"
SETTINGS = ("workers", "threads", "worker_class", "max_requests", "max_requests_jitter", "keepalive", "timeout")


def configuration(tmp_path: Path, **environment: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "GUNICORN_THREADS",
                                                             "GUNICORN_MAX_REQUESTS", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), **environment)
    code = (
        "import json, multiprocessing, runpy, sys; g = runpy.run_path(sys.argv[1]); "
        f"print(json.dumps({{**{{k: g[k] for k in {SETTINGS!r}}}, 'cpus': multiprocessing.cpu_count()}}))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(CONFIG)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_by_default_sync_workers_two_per_cpu_plus_one(tmp_path):
    config = configuration(tmp_path)
    assert config["worker_class"] == "sync" and config["threads"] == 1
    assert config["workers"] == 2 * config["cpus"] + 1


def test_a_worker_is_recycled_every_twenty_thousand_requests(tmp_path):
    config = configuration(tmp_path)
    assert (config["max_requests"], config["max_requests_jitter"]) == (20000, 2000)


@pytest.mark.parametrize("threads", ["2", "4"])
def test_threads_make_gthread_workers(tmp_path, threads):
    config = configuration(tmp_path, GUNICORN_THREADS=threads, WEB_CONCURRENCY="3")
    assert (config["worker_class"], config["threads"], config["workers"]) == ("gthread", int(threads), 3)
