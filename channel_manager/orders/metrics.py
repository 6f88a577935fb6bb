"""Metrics of issuance (see channel_manager.kernel.metrics for how they are stored and scraped)."""

from __future__ import annotations

from prometheus_client import Histogram  # noqa: I001

from channel_manager.kernel import metrics as _kernel_metrics  # noqa: F401  (prepares multiprocess storage first)

ISSUANCE_DURATION = Histogram(
    "cm_issuance_duration_seconds",
    "Time one issuance run took, by the status it settled the order in (none: nothing to do).",
    ["result"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def observe_issuance(*, result: str | None, seconds: float) -> None:
    ISSUANCE_DURATION.labels(result=result or "none").observe(seconds)
