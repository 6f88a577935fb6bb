"""Webhook secrets and signatures: HMAC-SHA256 over "<t>." + the raw body bytes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
# Receivers should refuse signatures older than this (replay protection); verify_signature does.
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A subscription's signing secret: 32 bytes from the CSPRNG, URL-safe text."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def compute_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}." + body, keyed with the secret's text."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The CM-Signature header value: t=<unix seconds>,v1=<hex>."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret=secret, timestamp=t, body=body)}"


def verify_signature(
    *, secret: str, body: bytes, header: str, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """What a receiver does: the header's v1 matches the body and t is recent."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = compute_signature(secret=secret, timestamp=t, body=body)
    return hmac.compare_digest(expected, parts.get("v1", ""))
