"""Metrics of webhook delivery (see channel_manager.kernel.metrics for how they are stored and scraped)."""

from __future__ import annotations

from prometheus_client import Counter  # noqa: I001

from channel_manager.kernel import metrics as _kernel_metrics  # noqa: F401  (prepares multiprocess storage first)

WEBHOOK_DELIVERIES = Counter(
    "cm_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retry (scheduled again), failed (for good), "
    "disabled (410 Gone switched the subscription off).",
    ["outcome"],
)
DELIVERY_OUTCOMES = ("delivered", "retry", "failed", "disabled")


def count_delivery(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
