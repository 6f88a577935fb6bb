"""The notifications API: subscriptions (create, list, delete, which URLs may receive webhooks)
and the events catch-up listing."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
import uuid

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from channel_manager.kernel import partners as partner_services
from notifications.models import Delivery, DeliveryState, Event, Subscription
from notifications.services import publish_event, refresh_event_states
from tests.factories import PartnerFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

ORDER_PROCESSED = "ota_cm_order_processed"
SUBSCRIPTIONS = "/notifications/subscriptions"
EVENTS = "/notifications/events"

PUBLIC_IP = "93.184.215.14"
RESOLVER = {
    "hooks.partner.example": [PUBLIC_IP],
    "v6.partner.example": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "internal.partner.example": ["10.0.0.5"],
    "mixed.partner.example": [PUBLIC_IP, "192.168.1.10"],
    "loopback.partner.example": ["127.0.0.1"],
    "metadata.partner.example": ["169.254.169.254"],
    "v6-loopback.partner.example": ["::1"],
    "mapped.partner.example": ["::ffff:127.0.0.1"],
    "multicast.partner.example": ["239.1.2.3"],
    "unspecified.partner.example": ["0.0.0.0"],
    "cgnat.partner.example": ["100.64.0.7"],
    "reserved.partner.example": ["240.0.0.1"],
}


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@pytest.fixture
def fake_dns(monkeypatch):
    """Resolve the test's host names without the network (others: 'not known')."""

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host in RESOLVER:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in RESOLVER[host]
            ]
        if host == "localhost" or is_ip_literal(host):
            return real(host, port, family, type, proto, flags)  # no network needed
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    real = socket.getaddrinfo
    monkeypatch.setattr("notifications.targets.socket.getaddrinfo", getaddrinfo)


@pytest.fixture
def production(settings, fake_dns):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    return settings


@pytest.fixture
def development(settings, fake_dns):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings


def subscribe(client, url="https://hooks.partner.example/cm", event_type=ORDER_PROCESSED, **extra):
    return client.post(SUBSCRIPTIONS, {"eventType": event_type, "url": url}, format="json", **extra)


def field_errors(response) -> list[str]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    return [e["field"] for e in body["errors"]]


def other_partner_client() -> tuple[object, APIClient]:
    other = PartnerFactory(partner_id="globe-trips")
    _, raw = partner_services.issue_api_key(partner=other)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return other, c


def publish(partner, subject: str = "", **payload) -> Event:
    return publish_event(
        event_type=ORDER_PROCESSED, partner_pk=partner.pk, subject_id=subject or str(uuid.uuid4()),
        payload={"order": {"orderId": subject, **payload}},
    )


# ---- createSubscription ------------------------------------------------------------------------


def test_subscribing_answers_201_with_the_subscription_and_a_long_random_secret(client, production):
    response = subscribe(client)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "subscriptionId", "eventType", "url", "secret", "livemode", "active", "disabledReason", "createdAt"
    }
    assert body["eventType"] == ORDER_PROCESSED
    assert body["url"] == "https://hooks.partner.example/cm"
    assert body["active"] is True and body["disabledReason"] is None
    assert body["createdAt"].endswith("Z")
    assert response["Location"] == f"{SUBSCRIPTIONS}/{body['subscriptionId']}"
    assert body["secret"].startswith("whsec_")
    raw = base64.urlsafe_b64decode(body["secret"].removeprefix("whsec_") + "==")
    assert len(raw) >= 24
    stored = Subscription.objects.get(subscription_id=body["subscriptionId"])
    assert stored.secret == body["secret"] and stored.active


def test_each_subscription_gets_its_own_secret(client, production):
    first = subscribe(client).json()
    second = subscribe(client).json()  # same URL: how a partner rotates its secret
    assert first["subscriptionId"] != second["subscriptionId"]
    assert first["secret"] != second["secret"]


def test_a_repeat_with_the_same_idempotency_key_replays_the_creation(client, production):
    first = subscribe(client, HTTP_IDEMPOTENCY_KEY="sub-1")
    again = subscribe(client, HTTP_IDEMPOTENCY_KEY="sub-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Subscription.objects.count() == 1


def test_subscribing_needs_an_api_key(anon_client, production):
    response = subscribe(anon_client)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"eventType": "order_shipped", "url": "https://hooks.partner.example/cm"}, ["eventType"]),
        ({"url": "https://hooks.partner.example/cm"}, ["eventType"]),
        ({"eventType": ORDER_PROCESSED}, ["url"]),
        ({"eventType": ORDER_PROCESSED, "url": 42}, ["url"]),
        ({"eventType": ORDER_PROCESSED, "url": ""}, ["url"]),
        ({"eventType": ORDER_PROCESSED, "url": "https://" + "a" * 2000 + ".example/"}, ["url"]),
        ({"eventType": 7, "url": None}, ["eventType", "url"]),
    ],
)
def test_an_invalid_subscription_is_a_validation_error_naming_each_field(client, production, body, fields):
    assert sorted(field_errors(client.post(SUBSCRIPTIONS, body, format="json"))) == fields
    assert not Subscription.objects.exists()


def test_a_body_that_is_not_an_object_is_a_validation_error(client, production):
    assert field_errors(client.post(SUBSCRIPTIONS, [1, 2], format="json")) == [""]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.partner.example/cm",
        "hooks.partner.example/cm",
        "https:///cm",
        "https://user:pass@hooks.partner.example/cm",
        "https://hooks.partner.example/c m",
        "https://hooks.partner.example:99999/cm",
        "javascript:alert(1)",
    ],
)
def test_a_url_that_is_not_an_absolute_http_url_is_refused(client, development, url):
    assert field_errors(subscribe(client, url=url)) == ["url"]


def test_production_accepts_https_to_public_addresses(client, production):
    assert subscribe(client, url="https://hooks.partner.example/cm?x=1").status_code == 201
    assert subscribe(client, url="https://v6.partner.example:8443/cm").status_code == 201
    assert subscribe(client, url=f"https://{PUBLIC_IP}/cm").status_code == 201


def test_production_refuses_plain_http(client, production):
    response = subscribe(client, url="http://hooks.partner.example/cm")
    assert field_errors(response) == ["url"]
    assert "https" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "host",
    [
        "internal.partner.example",
        "mixed.partner.example",  # one private address among public ones is enough
        "loopback.partner.example",
        "metadata.partner.example",
        "v6-loopback.partner.example",
        "mapped.partner.example",
        "multicast.partner.example",
        "unspecified.partner.example",
        "cgnat.partner.example",
        "reserved.partner.example",
        "127.0.0.1",
        "[::1]",
        "localhost",
    ],
)
def test_production_refuses_hosts_resolving_to_non_public_addresses(client, production, host):
    response = subscribe(client, url=f"https://{host}/cm")
    assert field_errors(response) == ["url"]
    assert not Subscription.objects.exists()


def test_a_host_that_does_not_resolve_is_refused(client, production):
    response = subscribe(client, url="https://nowhere.partner.example/cm")
    assert field_errors(response) == ["url"]
    assert "resolved" in response.json()["errors"][0]["message"]


def test_with_private_targets_allowed_http_and_loopback_are_accepted(client, development):
    assert subscribe(client, url="http://127.0.0.1:8765/hook").status_code == 201
    assert subscribe(client, url="http://localhost:8765/hook").status_code == 201
    assert subscribe(client, url="https://internal.partner.example/cm").status_code == 201


def test_a_partner_has_a_bounded_number_of_subscriptions(client, development):
    development.WEBHOOK_MAX_SUBSCRIPTIONS = 2
    assert subscribe(client).status_code == 201
    assert subscribe(client).status_code == 201
    assert field_errors(subscribe(client)) == [""]
    client.delete(f"{SUBSCRIPTIONS}/{Subscription.objects.first().subscription_id}")
    assert subscribe(client).status_code == 201


# ---- listSubscriptions / deleteSubscription ------------------------------------------------


def test_the_list_shows_only_the_partners_own_subscriptions_without_secrets(client, partner, production):
    other, other_client = other_partner_client()
    mine = [subscribe(client).json(), subscribe(client, url="https://v6.partner.example/b").json()]
    subscribe(other_client)

    response = client.get(SUBSCRIPTIONS)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["subscriptionId"] for r in results] == [m["subscriptionId"] for m in reversed(mine)]
    assert all("secret" not in r for r in results)
    assert results[-1] == {k: v for k, v in mine[0].items() if k != "secret"}
    assert len(other_client.get(SUBSCRIPTIONS).json()["results"]) == 1


def test_deleting_an_own_subscription_answers_204_and_stops_deliveries(client, partner, development):
    created = subscribe(client).json()
    publish(partner)

    response = client.delete(f"{SUBSCRIPTIONS}/{created['subscriptionId']}")

    assert response.status_code == 204 and response.content == b""
    assert client.get(SUBSCRIPTIONS).json()["results"] == []
    subscription = Subscription.objects.get(subscription_id=created["subscriptionId"])
    assert not subscription.active and subscription.deleted_at is not None
    assert list(Delivery.objects.values_list("state", flat=True)) == [DeliveryState.FAILED]
    assert publish(partner).delivery_state == DeliveryState.NONE
    again = client.delete(f"{SUBSCRIPTIONS}/{created['subscriptionId']}")
    assert again.status_code == 404 and again.json()["code"] == "not_found"


@pytest.mark.parametrize("make_id", [lambda sub: sub.subscription_id, lambda sub: uuid.uuid4(), lambda sub: "nope"])
def test_another_partners_or_an_unknown_subscription_is_not_found(client, make_id):
    foreign = SubscriptionFactory(partner=PartnerFactory(partner_id="globe-trips"))

    response = client.delete(f"{SUBSCRIPTIONS}/{make_id(foreign)}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
    foreign.refresh_from_db()
    assert foreign.active and foreign.deleted_at is None


# ---- listEvents ------------------------------------------------------------------------------


def test_events_list_only_the_partners_own_events_oldest_first(client, partner):
    other = PartnerFactory(partner_id="globe-trips")
    first = publish(partner, "order-1")
    publish(other, "order-x")
    second = publish(partner, "order-2")

    response = client.get(EVENTS)

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert body["results"] == [
        {"eventId": str(e.event_id), "eventType": ORDER_PROCESSED, "createdAt": e.created_at.isoformat()
         .replace("+00:00", "Z"), "livemode": True, "orderId": e.subject_id, "deliveryState": "none"}
        for e in (first, second)
    ]


def test_events_since_filters_by_creation_time(client, partner):
    old = publish(partner, "old")
    recent = publish(partner, "recent")
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(hours=3))
    since = (timezone.now() - dt.timedelta(hours=1)).replace(microsecond=0)

    for value in (since.isoformat().replace("+00:00", "Z"), since.astimezone(dt.timezone(dt.timedelta(hours=2)))
                  .isoformat()):
        response = client.get(EVENTS, {"since": value})
        assert [r["orderId"] for r in response.json()["results"]] == [recent.subject_id], value
    # An unencoded '+' arrives as a space; it is still understood.
    plus = since.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat().replace("+", " ")
    assert [r["orderId"] for r in client.get(f"{EVENTS}?since={plus}").json()["results"]] == ["recent"]


def test_events_are_kept_listable_for_30_days(client, partner):
    ancient = publish(partner, "ancient")
    month = publish(partner, "month")
    Event.objects.filter(pk=ancient.pk).update(created_at=timezone.now() - dt.timedelta(days=31))
    Event.objects.filter(pk=month.pk).update(created_at=timezone.now() - dt.timedelta(days=29))

    listed = [r["orderId"] for r in client.get(EVENTS).json()["results"]]
    assert listed == ["month"]
    long_ago = (timezone.now() - dt.timedelta(days=90)).isoformat()
    assert [r["orderId"] for r in client.get(EVENTS, {"since": long_ago}).json()["results"]] == ["month"]


def test_events_page_with_an_opaque_cursor_until_next_is_null(client, partner):
    created = [publish(partner, f"order-{i}") for i in range(5)]
    # Two events in the same microsecond: the id breaks the tie.
    Event.objects.filter(pk=created[2].pk).update(created_at=created[1].created_at)

    seen, url, pages = [], f"{EVENTS}?limit=2", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= 2
        seen += [r["orderId"] for r in body["results"]]
        url = body["next"]
        pages += 1
        if url:
            assert url.startswith("http://testserver/notifications/events?") and "limit=2" in url
    assert seen == [f"order-{i}" for i in range(5)]
    assert pages == 3


def test_the_events_page_costs_a_fixed_number_of_queries(client, partner):
    for i in range(3):
        publish(partner, f"order-{i}")
    client.get(EVENTS)  # warm up
    with CaptureQueriesContext(connection) as few:
        client.get(EVENTS)
    for i in range(20):
        publish(partner, f"more-{i}")
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(EVENTS).json()["results"]) == 23
    assert len(many) == len(few)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-27"}, "since"),
        ({"since": "2026-11-27T10:00:00"}, "since"),  # no offset
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"o:12").decode()}, "cursor"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_since_or_cursor_is_a_validation_error(client, partner, query, field):
    assert field_errors(client.get(EVENTS, query)) == [field]


def test_events_show_their_delivery_state(client, partner, development):
    none = publish(partner, "none")
    subscription = SubscriptionFactory(partner=partner)
    pending = publish(partner, "pending")
    delivered = publish(partner, "delivered")
    failed = publish(partner, "failed")
    Delivery.objects.filter(event=delivered).update(state=DeliveryState.DELIVERED)
    Delivery.objects.filter(event=failed).update(state=DeliveryState.FAILED)
    refresh_event_states(event_pks=[none.pk, pending.pk, delivered.pk, failed.pk])

    states = {r["orderId"]: r["deliveryState"] for r in client.get(EVENTS).json()["results"]}
    assert states == {"none": "none", "pending": "pending", "delivered": "delivered", "failed": "failed"}
    assert subscription.deliveries.count() == 3


def test_events_need_an_api_key(anon_client):
    assert anon_client.get(EVENTS).status_code == 401


# ---- schema ---------------------------------------------------------------------------------


def test_the_schema_documents_the_notification_operations(anon_client):
    schema = yaml.safe_load(anon_client.get("/api/schema/").content)
    found = {
        op["operationId"]: (path, method)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
        if isinstance(op, dict) and "operationId" in op
    }
    assert found["createSubscription"] == ("/notifications/subscriptions", "post")
    assert found["listSubscriptions"] == ("/notifications/subscriptions", "get")
    assert found["deleteSubscription"] == ("/notifications/subscriptions/{subscriptionId}", "delete")
    assert found["listEvents"] == ("/notifications/events", "get")
    create = schema["paths"]["/notifications/subscriptions"]["post"]["responses"]
    assert {"201", "400", "401", "403", "422"} <= set(create)
    problem = create["400"]["content"]["application/problem+json"]["schema"]["$ref"]
    assert problem == "#/components/schemas/Problem" and "Problem" in schema["components"]["schemas"]
    created = schema["components"]["schemas"]["CreatedSubscription"]["properties"]
    assert {"subscriptionId", "eventType", "url", "secret", "active", "createdAt"} <= set(created)
    event = schema["components"]["schemas"]["EventSummary"]["properties"]
    assert set(event) == {"eventId", "eventType", "createdAt", "livemode", "orderId", "deliveryState"}
