"""429 rate_limited per partner, with Retry-After; one partner's burst does not limit another."""

from __future__ import annotations

import pytest

from channel_manager.kernel import partners
from channel_manager.kernel.throttling import PartnerRateThrottle
from channel_manager.orders.models import Order
from tests.factories import PartnerFactory
from tests.payloads import order_body
from tests.test_api_auth import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit_three_per_minute(monkeypatch):
    monkeypatch.setattr(PartnerRateThrottle, "THROTTLE_RATES", {"partner": "3/minute"})


def test_requests_over_the_partners_rate_are_429_with_retry_after(client, catalog, limit_three_per_minute):
    for _ in range(3):
        assert client.get("/channelManager").status_code == 200
    response = client.get("/channelManager")
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_a_rate_limited_create_changes_nothing(client, catalog, limit_three_per_minute):
    for _ in range(3):
        client.get("/channelManager")
    assert client.post("/channelManager", order_body(), format="json").status_code == 429
    assert Order.objects.count() == 0


def test_a_rate_limited_response_is_not_stored_for_its_idempotency_key(client, catalog, limit_three_per_minute):
    for _ in range(3):
        client.get("/channelManager")
    body = order_body()
    assert client.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 429
    PartnerRateThrottle.THROTTLE_RATES = {"partner": None}
    assert client.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 202


def test_one_partners_burst_does_not_limit_another(client, catalog, anon_client, limit_three_per_minute):
    other = PartnerFactory(partner_id="other-travel")
    _, key = partners.issue_api_key(partner=other)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    for _ in range(4):
        client.get("/channelManager")
    assert client.get("/channelManager").status_code == 429
    assert anon_client.get("/channelManager").status_code == 200
