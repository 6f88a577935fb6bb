"""gunicorn configuration for production: `gunicorn -c channel_manager/deploy/gunicorn.conf.py`
(from the repository root; the WSGI app is channel_manager.wsgi:application).

Environment (all optional):
  GUNICORN_BIND              address to listen on (default 0.0.0.0:$PORT, PORT default 8000)
  WEB_CONCURRENCY            worker processes (default: 2 per CPU + 1)
  GUNICORN_THREADS           threads per worker (default 1: gunicorn's sync worker; more: its
                             gthread worker); each thread may hold a database connection, so a
                             node uses up to WEB_CONCURRENCY × GUNICORN_THREADS
  GUNICORN_TIMEOUT           seconds before a silent worker is killed and replaced (default 30)
  GUNICORN_MAX_REQUESTS      recycle a worker after this many requests (default 20000; 0: never)
  FORWARDED_ALLOW_IPS        proxies whose X-Forwarded-Proto gunicorn trusts (gunicorn reads it
                             itself; default 127.0.0.1,::1)
  PROMETHEUS_MULTIPROC_DIR   where the processes of this machine keep their metric samples
                             (default $TMPDIR/channel-manager-metrics); give the qcluster of
                             the same machine the same directory, so /metrics shows its metrics
  LOG_FORMAT                 json (production default) or plain, as for Django

No access log: the application writes one JSON line per request itself, without query strings
and with wallet tokens redacted (gunicorn's access log would print both).

Why sync workers (one request at a time each; bench/README.md, phase f, measured on 2 cores): a
gthread worker keeps each keep-alive connection to itself, and connections land on workers
unevenly, so the requests of the busiest worker queue behind each other (and behind the GIL
its threads share) while other workers idle: the tail. A sync worker answers one request per
connection and takes the next from the listening socket that all workers share, so requests
wait in one queue, first come first served, and the kernel shares the CPU between workers. The
bare Django floor at 16 connections: p99 45-617 ms with gthread (3 × 4, 4 × 2, 8 × 1), 23-33 ms
with sync workers; gate scans p99 53-131 ms and 38-51 ms. TLS and slow clients are the proxy's
in front (README "Running in production"): it buffers, so a slow download does not hold a
worker. A worker is recycled every 20,000 requests (it was 2,000): a start costs ~0.9 s of CPU
to import Django, about a sixth of the machine at full load when each worker restarted every
~20 s.
"""

import multiprocessing
import os
import tempfile

# Before any worker imports prometheus_client: it chooses its multi-process storage on import.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), "channel-manager-metrics"))
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channel_manager.settings")

wsgi_app = "channel_manager.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"]
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count() + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
worker_class = "sync" if threads == 1 else "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
graceful_timeout = 30
keepalive = 5  # gthread only: a sync worker closes each connection after its answer
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS") or 20000)
max_requests_jitter = max_requests // 10
# Worker heartbeats in memory, not on a disk that may stall.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Refuse absurd request lines and headers before Django sees them.
limit_request_line = 8190
limit_request_fields = 100

accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
_dev = any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in ("CM_DEV", "DEBUG"))
_format = os.environ.get("LOG_FORMAT", "").strip().lower() or ("plain" if _dev else "json")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "channel_manager.kernel.logs.JsonFormatter"},
        "plain": {"()": "channel_manager.kernel.logs.PlainFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": _format, "stream": "ext://sys.stderr"},
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}


def on_starting(server):
    """Fold the metric files of processes of an earlier run into the archive (counters go on)."""
    from channel_manager.kernel.metrics import compact

    compact(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    """A worker ended: drop its live gauges (its counters stay, folded in at the next scrape)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])
