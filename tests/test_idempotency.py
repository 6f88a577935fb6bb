"""Idempotency-Key: replay byte for byte, 422 on reuse, 409 while in progress, nothing stored for 409/5xx."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import RequestFactory
from rest_framework.renderers import JSONRenderer

from channel_manager.kernel import partners
from channel_manager.kernel.idempotency import IdempotencyMiddleware, request_hash
from channel_manager.kernel.models import IdempotencyRecord
from channel_manager.orders.models import Order
from tests.payloads import order_body
from tests.test_api_auth import assert_problem

pytestmark = pytest.mark.django_db


def post(client, body, key="key-1"):
    return client.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_repeat_with_same_key_and_body_replays_the_stored_response(client, catalog):
    body = order_body()
    first = post(client, body)
    again = post(client, body)
    assert first.status_code == again.status_code == 202
    assert again.content == first.content
    assert again["Location"] == first["Location"]
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert Order.objects.count() == 1


def test_replay_changes_nothing(client, catalog):
    body = order_body()
    post(client, body)
    order = Order.objects.get()
    post(client, body)
    assert Order.objects.get().updated_at == order.updated_at


def test_same_key_with_a_different_body_is_422(client, catalog):
    post(client, order_body())
    assert_problem(post(client, order_body()), 422, "idempotency_key_reused")
    assert Order.objects.count() == 1


def test_same_key_with_a_different_path_is_422(client, catalog):
    created = post(client, order_body(paymentReference=None)).json()
    response = client.delete(f"/channelManager/{created['orderId']}", HTTP_IDEMPOTENCY_KEY="key-1")
    assert_problem(response, 422, "idempotency_key_reused")


def test_keys_are_per_partner(client, catalog, anon_client):
    from tests.factories import PartnerFactory

    other = PartnerFactory(partner_id="other-travel")
    _, key = partners.issue_api_key(partner=other)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert post(client, order_body()).status_code == 202
    assert post(anon_client, order_body("other-travel")).status_code == 202


def test_error_responses_are_stored_and_replayed(client, catalog):
    body = order_body(items=[])
    first = post(client, body)
    assert first.status_code == 400
    again = post(client, body)
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"


def test_a_key_over_255_characters_is_400(client, catalog):
    assert_problem(post(client, order_body(), key="k" * 256), 400, "validation_error")


def test_without_the_header_a_second_create_is_duplicate_order(client, catalog):
    body = order_body()
    client.post("/channelManager", body, format="json")
    assert_problem(client.post("/channelManager", body, format="json"), 400, "duplicate_order")


def test_409_responses_are_not_stored(client, catalog):
    created = client.post("/channelManager", order_body(), format="json").json()
    # The order is in flight: delete answers 409 and the key stays free for a later retry.
    response = client.delete(f"/channelManager/{created['orderId']}", HTTP_IDEMPOTENCY_KEY="del-1")
    assert_problem(response, 409, "invalid_state")
    assert not IdempotencyRecord.objects.filter(key="del-1").exists()


def test_repeat_while_the_first_is_running_is_409_with_retry_after(client, catalog, partner):
    body = order_body()
    # Claim the key exactly as a request that is still running holds it.
    raw = JSONRenderer().render(body)  # the bytes APIClient sends
    request = RequestFactory().post("/channelManager", raw, content_type="application/json")
    IdempotencyMiddleware(lambda r: None)._claim(partner.pk, True, "key-1", request_hash(request))
    response = post(client, body)
    assert_problem(response, 409, "idempotency_in_progress")
    assert response["Retry-After"]


def test_a_claim_whose_request_died_is_taken_over(client, catalog, partner, settings):
    settings.IDEMPOTENCY_LOCK_SECONDS = 0
    body = order_body()
    IdempotencyRecord.objects.create(partner=partner, key="key-1", request_hash="dead",
                                     locked_at="2000-01-01T00:00:00Z")
    assert post(client, body).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_with_one_key_create_one_order(catalog, api_key):
    from rest_framework.test import APIClient

    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    body = order_body()
    statuses: list[int] = []

    def submit() -> None:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            statuses.append(c.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="race").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Order.objects.count() == 1
    assert set(statuses) <= {202, 409}
    assert 202 in statuses
