"""Per-partner (and per-mode) request rate limiting, so that one partner's burst cannot starve the others.

DRF's SimpleRateThrottle over Django's cache: with the default per-process memory cache each
web process counts on its own (the effective limit is the rate times the number of processes);
point CACHE_URL at Redis to count across processes and machines.
"""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle

from channel_manager.kernel.authentication import request_livemode
from channel_manager.kernel.models import Partner


class PartnerRateThrottle(SimpleRateThrottle):
    scope = "partner"

    def get_cache_key(self, request, view) -> str | None:
        partner = request.user
        if not isinstance(partner, Partner):
            return None
        # Per partner and mode: a test suite hammering test mode never throttles live sales.
        mode = "live" if request_livemode(request) else "test"
        return f"throttle:partner:{partner.pk}:{mode}"
