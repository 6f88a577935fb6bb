from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from catalog.selectors import clear_venue_cache
from channel_manager import services
from tests.factories import PartnerFactory, demo_catalog


@pytest.fixture(autouse=True)
def _fresh_venue():
    """A rolled-back test leaves no venue row, but the per-process cache would remember it."""
    clear_venue_cache()
    yield
    clear_venue_cache()


@pytest.fixture
def catalog(db):
    return demo_catalog()


@pytest.fixture
def partner_and_key(db):
    partner = PartnerFactory(partner_id="acme-travel", name="ACME Travel")
    _, raw = services.issue_api_key(partner=partner)
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
