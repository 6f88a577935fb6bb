"""No input, however malformed, answers 500; every error is problem+json and changes nothing."""

from __future__ import annotations

import json

import pytest

from channel_manager.orders.models import Order
from tests.payloads import line, order_body
from tests.test_api_auth import assert_problem

pytestmark = pytest.mark.django_db


def raw_post(client, data, content_type="application/json", path="/channelManager"):
    return client.generic("POST", path, data, content_type=content_type)


@pytest.mark.parametrize("data", [b"{", b"{'a': 1}", b"nope", b"\xff\xfe", b'{"items": [1,]}'])
def test_body_that_is_not_json_is_400_malformed_json(client, catalog, data):
    assert_problem(raw_post(client, data), 400, "malformed_json")


@pytest.mark.parametrize("data", [b"[]", b"null", b"42", b'"order"', b"{}"])
def test_json_that_is_not_an_order_object_is_400_validation_error(client, catalog, data):
    assert_problem(raw_post(client, data), 400, "validation_error")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_body_that_is_not_application_json_is_415(client, catalog, content_type):
    response = raw_post(client, json.dumps(order_body()).encode(), content_type=content_type)
    assert_problem(response, 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(client, catalog):
    response = raw_post(client, json.dumps(order_body()).encode(), content_type="application/json; charset=utf-8")
    assert response.status_code == 202


def test_body_over_the_size_limit_is_413(client, catalog, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1000
    body = order_body(customer={"firstName": "x" * 2000})
    assert_problem(raw_post(client, json.dumps(body).encode()), 413, "payload_too_large")


NASTY_VALUES = [
    None, True, 0, -1, 10**30, 1.5, "", "x" * 100_000, "😀" * 70, "\x00", "\u202e", [], {}, [None], {"a": None},
]


@pytest.mark.parametrize("value", NASTY_VALUES, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize(
    "path",
    ["partnerId", "sellToOrderReference", "paymentReference", "customer", "customer.email", "customer.country",
     "items", "items[0]", "items[0].itemId", "items[0].quantity", "items[0].visitDate", "items[0].visitTime",
     "items[0].wallet", "items[0].wallet.externalReferenceNumbers", "items[0].wallet.componentSchedule",
     "items[0].wallet.componentSchedule[0]"],
)
def test_any_value_anywhere_never_answers_500(client, catalog, path, value):
    body = order_body(items=[line("PARK-AND-SHOW", 1, wallet={"componentSchedule": [
        {"itemId": "SHOW-EVENING", "visitDate": "2030-01-01", "visitTime": "19:30"}]})])
    target, *rest = path.replace("[", ".").replace("]", "").split(".")
    container = body
    keys = [target, *rest]
    for key in keys[:-1]:
        container = container[int(key)] if key.isdigit() else container[key]
    last = keys[-1]
    if last.isdigit():
        container[int(last)] = value
    else:
        container[last] = value
    response = client.post("/channelManager", body, format="json")
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"


def test_nulls_everywhere_are_validation_errors(client, catalog):
    body = {"partnerId": None, "sellToOrderReference": None, "items": [{"itemId": None, "quantity": None,
            "visitDate": None, "visitTime": None, "wallet": None}]}
    response = client.post("/channelManager", body, format="json")
    assert_problem(response, 400, "validation_error")
    assert Order.objects.count() == 0


def test_unicode_references_are_refused_not_crashed(client, catalog):
    response = client.post("/channelManager", order_body(items=[line(wallet={"externalReferenceNumbers": ["Ünï"]})]),
                           format="json")
    assert_problem(response, 400, "validation_error")


def test_unicode_customer_names_round_trip(client, catalog):
    body = order_body(customer={"firstName": "Zoë", "lastName": "Ωmega 😀"})
    created = client.post("/channelManager", body, format="json").json()
    assert created["customer"]["firstName"] == "Zoë" and created["customer"]["lastName"] == "Ωmega 😀"


def test_unknown_path_answers_problem_json_404(client, catalog):
    assert client.get("/channelManager/a/b/c").status_code == 404


def test_wrong_method_is_405_problem(client, catalog):
    response = client.patch("/channelManager", {}, format="json")
    assert_problem(response, 405, "method_not_allowed")
