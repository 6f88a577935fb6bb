"""Prometheus metrics at `/metrics` (prometheus-client).

Recorded where they happen:
  cm_http_request_duration_seconds{operation,status}  histogram, every request (RequestMetricsMiddleware)
  the apps' own metrics, defined beside their code (issuance: channel_manager.orders.metrics;
  webhooks: notifications.metrics)
Read from the database at scrape time by collectors the apps register with add_scrape_collector
(channel_manager.ops.collectors: orders by status, the task queue, database up, the readiness checks).

Several processes: with PROMETHEUS_MULTIPROC_DIR set (channel_manager/deploy/gunicorn.conf.py
sets it; give the qcluster the same directory on the same machine), every process writes its
samples to files there and a scrape, answered by any one gunicorn worker, sums them all. Files of
processes that ended (gunicorn and django-q recycle workers) are folded into one archive file
per type under a lock, so that counters keep counting and the directory does not grow without
bound. Without the variable (development, tests) the metrics live in the process.

Access: with METRICS_TOKEN set, a scrape must send `Authorization: Bearer <METRICS_TOKEN>`.
Without it, in development (settings.DEV) clients from loopback or METRICS_ALLOWED_NETWORKS
(CIDRs) are answered; in production only clients from METRICS_ALLOWED_NETWORKS, and with
neither set /metrics is refused altogether: a proxy on the same machine makes every outside
request come from loopback, so loopback alone must never be enough.
"""

from __future__ import annotations

import fcntl
import glob
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


# prometheus_client picks its value storage when it is first imported: the directory must exist
# by then, in every process that records metrics (web workers and qcluster workers).
if multiprocess_dir():
    os.makedirs(multiprocess_dir(), exist_ok=True)

from prometheus_client import REGISTRY, CollectorRegistry, Histogram  # noqa: E402
from prometheus_client.exposition import choose_encoder  # noqa: E402
from prometheus_client.mmap_dict import MmapedDict  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402

from channel_manager.kernel.logs import operation_for  # noqa: E402

logger = logging.getLogger(__name__)

HTTP_REQUEST_DURATION = Histogram(
    "cm_http_request_duration_seconds",
    "Time to answer an HTTP request, by OpenAPI operationId (else route name) and status code.",
    ["operation", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def observe_request(*, operation: str, status: int, seconds: float) -> None:
    HTTP_REQUEST_DURATION.labels(operation=operation, status=str(status)).observe(seconds)


class RequestMetricsMiddleware:
    """Times every request (after RequestContextMiddleware, before everything else)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            observe_request(
                operation=operation_for(request), status=response.status_code, seconds=time.perf_counter() - started
            )
        except Exception:  # a metric must never cost a partner its answer
            logger.exception("could not record the request metric")
        return response


# ---- read at scrape time ----------------------------------------------------------------------


class _ProcessRegistry:
    """The metrics of this process (single-process mode), as one collector."""

    def collect(self):
        return REGISTRY.collect()


# ---- several processes ------------------------------------------------------------------------

ARCHIVED_TYPES = ("counter", "histogram")  # their stored values add up; no gauges are recorded
LOCK_FILE = ".compact.lock"


def _pid_of(path: str) -> int | None:
    """The pid in `counter_1234.db` / `histogram_1234.db`; None for an archive or a gauge file."""
    stem = os.path.basename(path)[: -len(".db")]
    kind, _, pid = stem.partition("_")
    return int(pid) if kind in ARCHIVED_TYPES and pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: str, mode: int) -> Iterator[None]:
    with open(os.path.join(path, LOCK_FILE), "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compact(path: str) -> int:
    """Fold the counter and histogram files of processes that ended into `<type>_archive.db`,
    and delete them; how many files were folded. Readers hold the shared lock, so a scrape never
    sees a value twice or misses one. Run at gunicorn start and before every scrape."""
    with _locked(path, fcntl.LOCK_EX):
        folded = 0
        for kind in ARCHIVED_TYPES:
            dead = [
                f for f in glob.glob(os.path.join(path, f"{kind}_*.db"))
                if (pid := _pid_of(f)) is not None and pid != os.getpid() and not _alive(pid)
            ]
            if not dead:
                continue
            archive = os.path.join(path, f"{kind}_archive.db")
            totals: dict[str, float] = defaultdict(float)
            for f in ([archive] if os.path.exists(archive) else []) + dead:
                for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(f):
                    totals[key] += value
            staged = archive + ".new"  # not *.db: invisible to readers until renamed
            if os.path.exists(staged):
                os.remove(staged)
            store = MmapedDict(staged)
            try:
                for key, value in totals.items():
                    store.write_value(key, value, 0.0)
            finally:
                store.close()
            os.replace(staged, archive)
            for f in dead:
                os.remove(f)
            folded += len(dead)
        return folded


class _LockedMultiProcessCollector(MultiProcessCollector):
    def __init__(self, path: str) -> None:
        super().__init__(None, path)

    def collect(self):
        try:
            compact(self._path)
        except OSError:
            logger.exception("could not compact %s", self._path)
        with _locked(self._path, fcntl.LOCK_SH):
            return list(super().collect())


def process_exited(pid: int) -> None:
    """gunicorn's child_exit hook: forget the live gauges of a worker that ended."""
    path = multiprocess_dir()
    if path:
        mark_process_dead(pid, path)


_registry: CollectorRegistry | None = None
_scrape_collectors: list[Any] = []
_registry_lock = threading.Lock()


def add_scrape_collector(collector: Any) -> None:
    """Read `collector` at every scrape, beside the recorded samples (the apps register theirs
    when Django starts, e.g. channel_manager.ops.collectors)."""
    global _registry
    with _registry_lock:
        _scrape_collectors.append(collector)
        _registry = None


def scrape_registry() -> CollectorRegistry:
    global _registry
    with _registry_lock:
        if _registry is None:
            registry = CollectorRegistry(auto_describe=False)
            path = multiprocess_dir()
            registry.register(_LockedMultiProcessCollector(path) if path else _ProcessRegistry())
            for collector in _scrape_collectors:
                registry.register(collector)
            _registry = registry
        return _registry


# ---- access -----------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in spec if cidr.strip())


LOOPBACK = ("127.0.0.0/8", "::1/128")


def configured_networks() -> tuple[str, ...]:
    """The CIDRs of METRICS_ALLOWED_NETWORKS (a list, or a comma-separated string)."""
    configured = getattr(settings, "METRICS_ALLOWED_NETWORKS", ())
    if isinstance(configured, str):
        configured = configured.split(",")
    return tuple(cidr.strip() for cidr in configured if cidr.strip())


def allowed_networks() -> tuple:
    """Who may scrape without a token: in development loopback and the configured networks; in
    production the configured networks only (list 127.0.0.1/32 there to scrape from the machine)."""
    implicit = LOOPBACK if getattr(settings, "DEV", False) else ()
    return _networks((*implicit, *configured_networks()))


def client_allowed(remote_addr: str | None) -> bool:
    try:
        address = ipaddress.ip_address((remote_addr or "").strip())
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in allowed_networks() if network.version == address.version)


def _denied(status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _denied(401, "Send the metrics token as 'Authorization: Bearer <token>'.",
                           {"WWW-Authenticate": 'Bearer realm="metrics"'})
    elif not getattr(settings, "DEV", False) and not configured_networks():
        # Production with no rule at all: refuse rather than fall back to "loopback", which is
        # what every request relayed by a local proxy looks like.
        return _denied(403, "Metrics are off: set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS.")
    elif not client_allowed(request.META.get("REMOTE_ADDR")):
        return _denied(403, "Metrics are served to METRICS_ALLOWED_NETWORKS only.")
    encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)

