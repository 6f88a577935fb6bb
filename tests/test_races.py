"""Races and replays: replaceOrder losing an external reference to a concurrent createOrder
answers reference_in_use and changes nothing; an Idempotency-Key whose first request outlives
its claim keeps the first stored response, byte for byte.

The replace race is made deterministic by letting the replace's own reference check pass once,
as it does when the other order commits just after the check: the database's unique constraint
is then what refuses the wallet. (Today `_lock` also locks the partner row, which happens to
serialize replaceOrder with createOrder on PostgreSQL; the constraint is the guarantee, not that.)"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from rest_framework.test import APIClient

from channel_manager.kernel.models import IdempotencyRecord
from channel_manager.orders import services
from channel_manager.orders.api.serializers import OrderRequestSerializer
from channel_manager.orders.api.views import order_input_from
from channel_manager.orders.errors import ReferenceInUse
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from tests.factories import submit_order
from tests.payloads import line, order_body
from tests.test_api_auth import assert_problem
from wallets.models import Wallet

REF = "ACME-RACE-1"
REF_FIELD = "items[0].wallet.externalReferenceNumbers[0]"


def with_reference(reference: str = REF, **overrides: Any) -> dict[str, Any]:
    return order_body(items=[line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": [reference]})], **overrides)


def order_input(body: dict[str, Any]) -> services.OrderInput:
    serializer = OrderRequestSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return order_input_from(serializer.validated_data)


def order_state(order: Order) -> dict[str, Any]:
    """What a replace would change: status, payment reference, lines, live wallets."""
    order = Order.objects.get(pk=order.pk)
    return {
        "status": order.status,
        "payment_reference": order.payment_reference,
        "lines": list(order.lines.values_list("pk", "item_code", "quantity")),
        "live_wallets": sorted(
            Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=True).values_list("pk", flat=True)
        ),
        "history": order.status_changes.count(),
    }


def check_passes_once_then_real() -> Callable[..., None]:
    """_check_references_free as it behaves when the other order commits just after it looked:
    the replace's own check finds nothing; every later call is the real one."""
    real = services._check_references_free
    calls = {"n": 0}

    def check(**kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            real(**kwargs)

    return check


# ---- replaceOrder against a concurrent createOrder ---------------------------------------------


@pytest.mark.django_db
def test_replace_losing_a_reference_to_another_order_is_reference_in_use(catalog, partner):
    draft = submit_order(partner, order_body(paymentReference=None))
    assert draft.status == OrderStatus.DRAFT
    before = order_state(draft)
    # The other order took the reference after the replace had checked it.
    submit_order(partner, with_reference(), settle=False)
    with mock.patch.object(services, "_check_references_free", side_effect=check_passes_once_then_real()):
        with pytest.raises(ReferenceInUse) as refused:
            services.replace_order(order=draft, order_input=order_input(
                with_reference(sellToOrderReference=draft.sell_to_order_reference)))
    assert [e["field"] for e in refused.value.errors] == [REF_FIELD]
    # Rolled back whole: the old content, wallets and history are as they were.
    assert order_state(draft) == before


@pytest.mark.django_db
def test_a_replace_failing_on_another_constraint_still_raises(catalog, partner):
    draft = submit_order(partner, order_body(paymentReference=None))
    with mock.patch.object(services, "_write_lines_and_wallets", side_effect=services.IntegrityError("other")):
        with pytest.raises(services.IntegrityError):
            services.replace_order(order=draft, order_input=order_input(
                with_reference(sellToOrderReference=draft.sell_to_order_reference)))


@pytest.mark.django_db
def test_replace_losing_a_reference_through_the_api_is_400_reference_in_use(client, catalog, partner):
    """The same race seen by the partner: a problem+json naming the field, never a 500."""
    draft = submit_order(partner, order_body(paymentReference=None))
    before = order_state(draft)
    assert client.post("/channelManager", with_reference(), format="json").status_code == 202
    body = with_reference(sellToOrderReference=draft.sell_to_order_reference)
    with mock.patch.object(services, "_check_references_free", side_effect=check_passes_once_then_real()):
        response = client.put(f"/channelManager/{draft.order_id}", body, format="json")
    problem = assert_problem(response, 400, "reference_in_use")
    assert [e["field"] for e in problem["errors"]] == [REF_FIELD]
    assert order_state(draft) == before
    assert Wallet.objects.filter(external_reference_number=REF, destroyed_at__isnull=True).count() == 1


# ---- Idempotency-Key: a first request slower than its claim ------------------------------------


def slow_first_call(real: Callable[..., Any], *, entered: threading.Event, seconds: float, before: bool):
    """`real`, with its first call made `seconds` slower (before or after it does its work)."""
    calls = {"n": 0}

    def slow(**kwargs: Any) -> Any:
        calls["n"] += 1
        first = calls["n"] == 1
        if first:
            entered.set()
            if before:
                time.sleep(seconds)
        result = real(**kwargs)
        if first and not before:
            time.sleep(seconds)
        return result

    return slow


@pytest.mark.parametrize("slow_part", ["before", "after"], ids=["slow-before-its-work", "slow-after-its-work"])
@pytest.mark.django_db(transaction=True)
def test_a_first_request_slower_than_its_claim_never_replaces_the_stored_response(
    catalog, api_key, settings, slow_part
):
    """The first createOrder outlives IDEMPOTENCY_LOCK_SECONDS; a retry with the same key takes
    the claim over and stores its answer. The first may not overwrite it (before the fix it did:
    a later replay answered duplicate_order), and its own changes roll back."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    settings.IDEMPOTENCY_LOCK_SECONDS = 1
    body = order_body()
    entered = threading.Event()
    responses: dict[str, Any] = {}

    def post(name: str) -> None:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            responses[name] = c.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="slow-1")
        finally:
            connection.close()

    slow = slow_first_call(services.create_order, entered=entered, seconds=3.0, before=slow_part == "before")
    with mock.patch.object(services, "create_order", side_effect=slow):
        first = threading.Thread(target=post, args=("first",))
        first.start()
        assert entered.wait(10)
        time.sleep(1.3)  # the first request's claim is now stale
        second = threading.Thread(target=post, args=("second",))
        second.start()
        second.join(30)
        first.join(30)
    stored = responses["second"]
    assert stored.status_code == 202, stored.content
    replay = APIClient()
    replay.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    again = replay.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="slow-1")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.content == stored.content and again["Location"] == stored["Location"]
    # The first request answers as a repeat: the stored response, or 409 while the second ran.
    loser = responses["first"]
    if loser.status_code == 409:
        assert_problem(loser, 409, "idempotency_in_progress")
    else:
        assert loser.content == stored.content and loser["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert str(Order.objects.get().order_id) == stored.json()["orderId"]
    assert IdempotencyRecord.objects.get(key="slow-1").response_body == stored.content


@pytest.mark.django_db
def test_a_request_whose_claim_was_taken_over_does_not_free_the_key(client, catalog, partner):
    """A slow request answering 5xx must not delete the claim a repeat now holds."""
    from channel_manager.kernel.idempotency import IdempotencyMiddleware

    stale_token = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    record = IdempotencyRecord.objects.create(partner=partner, key="k", request_hash="h", locked_at=stale_token)
    IdempotencyRecord.objects.filter(pk=record.pk).update(locked_at=stale_token + dt.timedelta(minutes=5))
    IdempotencyMiddleware._release(record, stale_token)
    assert IdempotencyRecord.objects.filter(pk=record.pk).exists()


@pytest.mark.django_db
def test_a_replace_taking_a_free_reference_still_succeeds(catalog, partner):
    """The catch changes nothing for a replace that wins: issuance settles the new content."""
    draft = submit_order(partner, order_body(paymentReference=None))
    services.replace_order(order=draft, order_input=order_input(
        with_reference("ACME-OK-1", sellToOrderReference=draft.sell_to_order_reference)))
    issue_order(order_pk=draft.pk)
    assert Wallet.objects.filter(external_reference_number="ACME-OK-1", destroyed_at__isnull=True).count() == 1
