"""Authentication and partners: 401 and the three 403s, and partners seeing only their own orders."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channel_manager.kernel import partners
from tests.factories import PartnerFactory
from tests.payloads import order_body

pytestmark = pytest.mark.django_db


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert body["title"] and body["detail"]
    return body


def test_missing_api_key_is_401_not_authenticated(anon_client, catalog):
    assert_problem(anon_client.get("/channelManager"), 401, "not_authenticated")


def test_unknown_api_key_is_401_not_authenticated(anon_client, catalog):
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer cmk_not-a-real-key")
    assert_problem(anon_client.post("/channelManager", order_body(), format="json"), 401, "not_authenticated")


def test_non_bearer_scheme_is_401(anon_client, api_key):
    anon_client.credentials(HTTP_AUTHORIZATION=f"Basic {api_key}")
    assert_problem(anon_client.get("/channelManager"), 401, "not_authenticated")


def test_revoked_api_key_is_401(client, partner):
    key = partner.api_keys.get()
    partners.revoke_api_key(api_key=key)
    assert_problem(client.get("/channelManager"), 401, "not_authenticated")


def test_a_partner_may_hold_several_keys_for_rotation(client, partner, anon_client):
    _, second = partners.issue_api_key(partner=partner, label="rotation")
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {second}")
    assert anon_client.get("/channelManager").status_code == 200
    assert client.get("/channelManager").status_code == 200


def test_api_key_is_stored_only_as_a_hash(partner, api_key):
    stored = partner.api_keys.get()
    assert api_key not in (stored.digest, stored.prefix)
    assert len(stored.digest) == 64


def test_request_before_active_from_is_403_partnership_not_active(client, partner, catalog):
    partner.active_from = timezone.now() + dt.timedelta(days=1)
    partner.save()
    assert_problem(client.post("/channelManager", order_body(), format="json"), 403, "partnership_not_active")


def test_request_under_disabled_partnership_is_403_partnership_disabled(client, partner, catalog):
    partners.set_partner_enabled(partner=partner, enabled=False)
    assert_problem(client.get("/channelManager"), 403, "partnership_disabled")


def test_body_partner_must_be_the_keys_partner(client, catalog):
    PartnerFactory(partner_id="other-travel")
    response = client.post("/channelManager", order_body("other-travel"), format="json")
    assert_problem(response, 403, "partner_mismatch")


def test_partner_mismatch_creates_nothing(client, catalog):
    from channel_manager.orders.models import Order

    client.post("/channelManager", order_body("someone-else"), format="json")
    assert Order.objects.count() == 0


def test_another_partners_order_is_404_exactly_like_a_missing_one(client, catalog, anon_client):
    other = PartnerFactory(partner_id="other-travel")
    _, other_key = partners.issue_api_key(partner=other)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    created = anon_client.post("/channelManager", order_body("other-travel"), format="json")
    assert created.status_code == 202
    order_id = created.json()["orderId"]

    foreign = client.get(f"/channelManager/{order_id}")
    missing = client.get("/channelManager/00000000-0000-0000-0000-000000000000")
    assert_problem(foreign, 404, "not_found")
    assert foreign.json() == missing.json()
    for response in (
        client.put(f"/channelManager/{order_id}", order_body(), format="json"),
        client.delete(f"/channelManager/{order_id}"),
        client.post(f"/channelManager/{order_id}/confirm", {"paymentReference": "P"}, format="json"),
    ):
        assert_problem(response, 404, "not_found")


def test_find_orders_lists_only_the_partners_own(client, catalog, anon_client):
    other = PartnerFactory(partner_id="other-travel")
    _, other_key = partners.issue_api_key(partner=other)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    anon_client.post("/channelManager", order_body("other-travel"), format="json")
    client.post("/channelManager", order_body(), format="json")
    results = client.get("/channelManager").json()["results"]
    assert [o["partnerId"] for o in results] == ["acme-travel"]
