from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from catalog.selectors import clear_catalog_cache, clear_venue_cache
from channel_manager.kernel import partners
from tests.factories import PartnerFactory, demo_catalog


@pytest.fixture(autouse=True)
def _fresh_venue():
    """A rolled-back test leaves no venue or items, but the per-process caches would remember them."""
    clear_venue_cache()
    clear_catalog_cache()
    yield
    clear_venue_cache()
    clear_catalog_cache()


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch):
    """Rate limiting is off in tests unless a test turns it on (tests/test_rate_limit.py)."""
    from django.core.cache import cache

    from channel_manager.kernel.throttling import PartnerRateThrottle

    monkeypatch.setattr(PartnerRateThrottle, "THROTTLE_RATES", {"partner": None})
    cache.clear()


@pytest.fixture
def catalog(db):
    return demo_catalog()


@pytest.fixture
def partner_and_key(db):
    partner = PartnerFactory(partner_id="acme-travel", name="ACME Travel")
    _, raw = partners.issue_api_key(partner=partner)
    return partner, raw


@pytest.fixture
def partner(partner_and_key):
    return partner_and_key[0]


@pytest.fixture
def api_key(partner_and_key):
    return partner_and_key[1]


@pytest.fixture
def client(api_key) -> APIClient:
    """An API client authenticated as the partner `acme-travel`."""
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return c


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def receiver():
    """A local webhook receiver (tests/test_notifications_delivery.py Receiver), stopped after."""
    from tests.test_notifications_delivery import Receiver

    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def _fresh_gate_keys():
    """Gate signing keys are cached per process too; a rolled-back test's keys must not outlive it."""
    from wallets.gate.signing import clear_key_cache

    clear_key_cache()
    yield
    clear_key_cache()
