"""Test mode (API.md, "Test mode (partners)"): every partner-facing operation, with a test key and
a live key of the same partner; neither ever sees what the other made. Also the test pool of
capacity and the simulated outcomes (testScenario)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from catalog.models import Capacity
from channel_manager.kernel import partners
from channel_manager.orders.issuance import issue_due_orders, issue_order
from channel_manager.orders.models import Order, OrderStatus
from notifications.models import Delivery, Event
from tests.factories import ItemFactory, VenueFactory
from tests.payloads import line, order_body, visit_date
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def test_key(partner) -> str:
    _, raw = partners.issue_api_key(partner=partner, label="test", livemode=False)
    return raw


@pytest.fixture
def test_client(test_key) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {test_key}")
    return c


@pytest.fixture
def live_client(client) -> APIClient:
    return client


@pytest.fixture
def hooks_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings


def create(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def settle(order: dict) -> Order:
    issue_order(order_pk=Order.objects.get(order_id=order["orderId"]).pk)
    return Order.objects.get(order_id=order["orderId"])


def both_orders(live_client, test_client, **overrides) -> tuple[dict, dict]:
    return create(live_client, **overrides), create(test_client, **overrides)


# ---- keys ---------------------------------------------------------------------------------


def test_test_keys_start_cmk_test_and_live_keys_never_do(partner):
    _, test_raw = partners.issue_api_key(partner=partner, livemode=False)
    live = [partners.issue_api_key(partner=partner)[1] for _ in range(20)]
    assert test_raw.startswith("cmk_test_")
    assert all(raw.startswith("cmk_") and not raw.startswith("cmk_test_") for raw in live)


def test_rate_limits_count_per_partner_and_mode(live_client, test_client, catalog, monkeypatch):
    from channel_manager.kernel.throttling import PartnerRateThrottle

    monkeypatch.setattr(PartnerRateThrottle, "THROTTLE_RATES", {"partner": "3/minute"})
    for _ in range(3):
        assert test_client.get("/channelManager").status_code == 200
    assert test_client.get("/channelManager").status_code == 429
    assert live_client.get("/channelManager").status_code == 200  # a test suite never throttles sales


# ---- orders -------------------------------------------------------------------------------


def test_create_order_marks_test_orders_livemode_false_and_live_orders_true(live_client, test_client, catalog):
    live, test = both_orders(live_client, test_client)
    assert live["livemode"] is True
    assert test["livemode"] is False
    assert Order.objects.get(order_id=test["orderId"]).livemode is False


def test_the_same_partner_reference_is_free_in_each_mode(live_client, test_client, catalog):
    live, test = both_orders(live_client, test_client, sellToOrderReference="SAME-1")
    assert live["orderId"] != test["orderId"]
    # ... and still a duplicate within its own mode.
    again = test_client.post("/channelManager", order_body(sellToOrderReference="SAME-1"), format="json")
    assert again.status_code == 400 and again.json()["code"] == "duplicate_order"
    assert again.json()["orderId"] == test["orderId"]


def test_external_references_are_separate_per_mode(live_client, test_client, catalog):
    items = [line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["REF-1"]})]
    live, test = both_orders(live_client, test_client, items=items)
    assert settle(live).status == OrderStatus.ISSUED
    assert settle(test).status == OrderStatus.ISSUED
    assert Wallet.objects.filter(external_reference_number="REF-1", destroyed_at__isnull=True).count() == 2


@pytest.mark.parametrize("mode", ["live", "test"])
def test_get_order_of_the_other_mode_is_404_not_found(live_client, test_client, catalog, mode):
    owner, other = (live_client, test_client) if mode == "live" else (test_client, live_client)
    order = create(owner)
    assert owner.get(f"/channelManager/{order['orderId']}").status_code == 200
    response = other.get(f"/channelManager/{order['orderId']}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_find_orders_lists_only_the_keys_mode(live_client, test_client, catalog):
    live, test = both_orders(live_client, test_client, sellToOrderReference="SAME-2")
    for client, own in ((live_client, live), (test_client, test)):
        for query in ("", "?sellToOrderReference=SAME-2"):
            body = client.get(f"/channelManager{query}").json()
            assert [o["orderId"] for o in body["results"]] == [own["orderId"]]


@pytest.mark.parametrize("mode", ["live", "test"])
def test_replace_order_of_the_other_mode_is_404(live_client, test_client, catalog, mode):
    owner, other = (live_client, test_client) if mode == "live" else (test_client, live_client)
    order = create(owner, paymentReference=None)
    settle(order)
    body = order_body(sellToOrderReference=order["sellToOrderReference"])
    assert other.put(f"/channelManager/{order['orderId']}", body, format="json").status_code == 404
    assert owner.put(f"/channelManager/{order['orderId']}", body, format="json").status_code == 202


@pytest.mark.parametrize("mode", ["live", "test"])
def test_confirm_order_of_the_other_mode_is_404(live_client, test_client, catalog, mode):
    owner, other = (live_client, test_client) if mode == "live" else (test_client, live_client)
    order = create(owner, paymentReference=None)
    settle(order)
    path = f"/channelManager/{order['orderId']}/confirm"
    assert other.post(path, {"paymentReference": "PAY-1"}, format="json").status_code == 404
    assert Order.objects.get(order_id=order["orderId"]).status == OrderStatus.DRAFT
    assert owner.post(path, {"paymentReference": "PAY-1"}, format="json").status_code == 200


@pytest.mark.parametrize("mode", ["live", "test"])
def test_delete_order_of_the_other_mode_is_404(live_client, test_client, catalog, mode):
    owner, other = (live_client, test_client) if mode == "live" else (test_client, live_client)
    order = create(owner)
    settle(order)
    assert other.delete(f"/channelManager/{order['orderId']}").status_code == 404
    assert Order.objects.get(order_id=order["orderId"]).status == OrderStatus.ISSUED
    assert owner.delete(f"/channelManager/{order['orderId']}").status_code == 200


def test_idempotency_keys_are_separate_per_mode(live_client, test_client, catalog):
    body = order_body(sellToOrderReference="IDEM-1")
    live = live_client.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    test = test_client.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert live.status_code == test.status_code == 202
    assert "Idempotent-Replayed" not in test.headers
    assert live.json()["orderId"] != test.json()["orderId"]
    replay = test_client.post("/channelManager", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["orderId"] == test.json()["orderId"]


# ---- catalog and availability ------------------------------------------------------------


def test_list_catalog_items_is_the_same_catalog_in_both_modes(live_client, test_client, catalog):
    live = live_client.get("/catalog/items")
    test = test_client.get("/catalog/items")
    assert live.status_code == test.status_code == 200
    assert live.json() == test.json()


def availability(client, item_id: str, day: str) -> dict:
    response = client.get(f"/catalog/items/{item_id}/availability?from={day}&to={day}")
    assert response.status_code == 200, response.content
    return response.json()["results"][0]


def test_get_availability_with_a_test_key_reads_the_test_pool(live_client, test_client, catalog):
    day = visit_date()
    settle(create(live_client, items=[line("DAY-ADULT", 3, visitDate=day)]))
    settle(create(test_client, items=[line("DAY-ADULT", 5, visitDate=day)]))
    assert availability(live_client, "DAY-ADULT", day)["remaining"] == 4997
    assert availability(test_client, "DAY-ADULT", day)["remaining"] == 4995


@pytest.fixture
def small_item(db):
    VenueFactory()
    return ItemFactory(item_id="BOAT-TRIP", capacity_per_day=4)


def test_test_orders_exhaust_the_test_pool_while_live_capacity_is_untouched(live_client, test_client, small_item):
    day = visit_date()
    assert settle(create(test_client, items=[line("BOAT-TRIP", 4, visitDate=day)])).status == OrderStatus.ISSUED
    refused = settle(create(test_client, items=[line("BOAT-TRIP", 1, visitDate=day)]))
    assert refused.status == OrderStatus.ERROR and "sold out" in refused.status_message

    assert availability(test_client, "BOAT-TRIP", day)["status"] == "SOLD_OUT"
    live = availability(live_client, "BOAT-TRIP", day)
    assert (live["status"], live["remaining"], live["capacity"]) == ("AVAILABLE", 4, 4)
    assert not Capacity.objects.filter(livemode=True, sold__gt=0).exists()
    # The live pool still sells all of it.
    assert settle(create(live_client, items=[line("BOAT-TRIP", 4, visitDate=day)])).status == OrderStatus.ISSUED


def test_cancelling_a_test_order_gives_back_to_the_test_pool_only(live_client, test_client, small_item):
    day = visit_date()
    live = create(live_client, items=[line("BOAT-TRIP", 1, visitDate=day)])
    test = create(test_client, items=[line("BOAT-TRIP", 2, visitDate=day)])
    settle(live), settle(test)
    assert test_client.delete(f"/channelManager/{test['orderId']}").status_code == 200
    sold = dict(Capacity.objects.values_list("livemode", "sold"))
    assert sold == {True: 1, False: 0}


# ---- notifications -----------------------------------------------------------------------


def subscribe(client) -> dict:
    response = client.post(
        "/notifications/subscriptions", {"eventType": "ota_cm_order_processed", "url": HOOK}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_create_subscription_with_a_test_key_is_a_test_subscription(live_client, test_client, hooks_allowed):
    assert subscribe(test_client)["livemode"] is False
    assert subscribe(live_client)["livemode"] is True


def test_list_subscriptions_shows_only_the_keys_mode(live_client, test_client, hooks_allowed):
    live, test = subscribe(live_client), subscribe(test_client)
    for client, own in ((live_client, live), (test_client, test)):
        listed = client.get("/notifications/subscriptions").json()["results"]
        assert [s["subscriptionId"] for s in listed] == [own["subscriptionId"]]


@pytest.mark.parametrize("mode", ["live", "test"])
def test_delete_subscription_of_the_other_mode_is_404(live_client, test_client, hooks_allowed, mode):
    owner, other = (live_client, test_client) if mode == "live" else (test_client, live_client)
    subscription = subscribe(owner)
    path = f"/notifications/subscriptions/{subscription['subscriptionId']}"
    assert other.delete(path).status_code == 404
    assert owner.delete(path).status_code == 204


def test_a_test_subscription_receives_test_events_only(live_client, test_client, catalog, hooks_allowed):
    live_subscription, test_subscription = subscribe(live_client), subscribe(test_client)
    live, test = both_orders(live_client, test_client)
    settle(live), settle(test)

    delivered_to = {
        (str(d.subscription.subscription_id), d.event.subject_id)
        for d in Delivery.objects.select_related("event", "subscription")
    }
    assert delivered_to == {
        (live_subscription["subscriptionId"], live["orderId"]),
        (test_subscription["subscriptionId"], test["orderId"]),
    }


def test_webhook_bodies_and_events_carry_livemode(live_client, test_client, catalog):
    live, test = both_orders(live_client, test_client)
    settle(live), settle(test)
    event = Event.objects.get(subject_id=test["orderId"])
    assert event.livemode is False
    assert '"livemode":false' in event.body
    assert '"livemode":true' not in event.body.split('"data"')[0]


def test_list_events_shows_only_the_keys_mode(live_client, test_client, catalog):
    live, test = both_orders(live_client, test_client)
    settle(live), settle(test)
    for client, own, mode in ((live_client, live, True), (test_client, test, False)):
        events = client.get("/notifications/events").json()["results"]
        assert [(e["orderId"], e["livemode"]) for e in events] == [(own["orderId"], mode)]


# ---- manifests ---------------------------------------------------------------------------


def test_a_test_orders_manifest_says_test_not_valid_for_entry(live_client, test_client, catalog):
    live, test = both_orders(live_client, test_client)
    settle(live), settle(test)
    for order, banner in ((test, True), (live, False)):
        url = test_client.get(f"/channelManager/{order['orderId']}").json() if order is test else None
        url = (url or live_client.get(f"/channelManager/{order['orderId']}").json())["items"][0]["wallets"][0]
        page = APIClient().get(url["manifestUrl"], HTTP_ACCEPT="text/html")
        assert page.status_code == 200
        assert ("TEST — not valid for entry" in page.content.decode()) is banner
        document = APIClient().get(url["manifestUrl"], HTTP_ACCEPT="application/json").json()
        assert document["livemode"] is (not banner)


# ---- simulated outcomes ------------------------------------------------------------------


def test_test_scenario_with_a_live_key_is_a_validation_error_naming_it(live_client, catalog):
    response = live_client.post("/channelManager", order_body(testScenario="error"), format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert [e["field"] for e in response.json()["errors"]] == ["testScenario"]
    assert not Order.objects.exists()


def test_test_scenario_error_settles_the_order_in_error_naming_items_0(test_client, catalog):
    order = create(test_client, testScenario="error")
    settled = settle(order)
    assert settled.status == OrderStatus.ERROR
    assert settled.status_message.startswith("items[0]")
    assert not Capacity.objects.filter(sold__gt=0).exists()


def test_replacing_an_error_scenario_order_without_it_issues_it(test_client, catalog):
    order = create(test_client, testScenario="error")
    settle(order)
    body = order_body(sellToOrderReference=order["sellToOrderReference"])
    assert test_client.put(f"/channelManager/{order['orderId']}", body, format="json").status_code == 202
    assert settle(order).status == OrderStatus.ISSUED


def test_test_scenario_slow_stays_in_flight_until_its_time_then_issues(test_client, catalog):
    order = create(test_client, testScenario="slow")
    row = Order.objects.get(order_id=order["orderId"])
    assert row.issue_after is not None
    assert 9 <= (row.issue_after - row.created_at).total_seconds() <= 11

    assert issue_due_orders() is None  # not due yet: no worker waits for it
    assert Order.objects.get(pk=row.pk).status == OrderStatus.SCHEDULED

    Order.objects.filter(pk=row.pk).update(issue_after=timezone.now() - dt.timedelta(seconds=1))
    assert issue_due_orders() == {row.pk: OrderStatus.ISSUED}


def test_test_scenario_slow_queues_a_run_for_when_it_is_due(test_client, catalog, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        order = create(test_client, testScenario="slow")
    due = Order.objects.get(order_id=order["orderId"]).issue_after
    assert OrmQ.objects.filter(lock=due).count() == 1
