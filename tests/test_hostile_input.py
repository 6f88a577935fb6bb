"""Input that must never answer 5xx ([2.3]): JSON nested past the parser's recursion limit,
timestamps and dates at the ends of the calendar, far-future visits, cursors naming huge or
odd numbers, control characters in references, oversized headers; and, to catch the next such
hole, a property-based test that sends hostile values in every parameter and field of every
partner-API operation of the OpenAPI schema and accepts only success or a 4xx problem+json."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import yaml
from django.core.management import CommandError, call_command
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from catalog.models import PackageCoupon
from catalog.parsing import parse_catalog
from catalog.selectors import venue_today
from catalog.specs import CatalogInvalid
from channel_manager.kernel.cursors import encode_cursor
from channel_manager.kernel.parsers import MAX_JSON_DEPTH, json_depth
from channel_manager.orders.admin.forms import ExportForm, PartnerChangeForm, PartnerCreateForm, ReissueForm
from channel_manager.orders.api import fast_parsing
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderLine, OrderStatus
from tests.factories import SubscriptionFactory, submit_order
from tests.payloads import line, order_body, visit_date
from tests.test_api_auth import assert_problem
from tests.test_manifests import configure_passkit
from wallets.contents import coupon_valid_until

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
DEEP = 100_000  # far past Python's recursion limit (1000)


def raw(client, method: str, path: str, body: bytes | str, **extra: Any):
    data = body.encode() if isinstance(body, str) else body
    return client.generic(method, path, data, content_type="application/json", **extra)


def field_errors(response) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]


def draft_order(partner) -> Order:
    """A Draft order of the partner (issued in-process, without a paymentReference)."""
    order = submit_order(partner, order_body(paymentReference=None))
    assert order.status == OrderStatus.DRAFT
    return order


# ---- nesting depth ---------------------------------------------------------------------------


def nested(depth: int, kind: str = "array") -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def inside_an_order(depth: int, kind: str = "array") -> str:
    """A valid order body with a deeply nested value under one of its members."""
    body = order_body(customer={"firstName": "__DEEP__"})
    return json.dumps(body).replace('"__DEEP__"', nested(depth, kind))


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["alone", "inside an order"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, DEEP])
def test_deep_nesting_is_400_malformed_json_on_every_write(client, catalog, partner, kind, where, depth):
    order = draft_order(partner)
    body = nested(depth, kind) if where == "alone" else inside_an_order(depth, kind)
    writes = [
        ("POST", "/channelManager"),
        ("PUT", f"/channelManager/{order.order_id}"),
        ("POST", f"/channelManager/{order.order_id}/confirm"),
        ("POST", "/notifications/subscriptions"),
    ]
    for method, path in writes:
        assert_problem(raw(client, method, path, body), 400, "malformed_json")
        # With an Idempotency-Key the middleware hashes the body first: same answer, nothing stored.
        assert_problem(raw(client, method, path, body, HTTP_IDEMPOTENCY_KEY=f"deep-{method}-{path}"),
                       400, "malformed_json")
    assert Order.objects.count() == 1


def test_nesting_up_to_the_limit_is_parsed_as_usual(client, catalog):
    # Deep but allowed: the serializer answers (customer must be an object), not the parser.
    response = raw(client, "POST", "/channelManager", inside_an_order(MAX_JSON_DEPTH - 3))
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["customer.firstName"]


def test_brackets_inside_strings_do_not_count_as_nesting(client, catalog):
    body = order_body(customer={"firstName": "[" * 100, "lastName": '\\"{' * 33})
    assert client.post("/channelManager", body, format="json").status_code == 202
    assert json_depth('{"a": "[[[[", "b": ["\\"[[", {"c": []}]}') == 4


def test_deep_json_pasted_into_the_admin_reissue_form_is_a_form_error(catalog, partner):
    form = ReissueForm(data={"items": nested(DEEP), "payment_reference": ""}, order=draft_order(partner))
    assert not form.is_valid()
    assert "items" in form.errors


def test_a_deeply_nested_catalog_file_is_refused_as_invalid_json():
    with pytest.raises(CatalogInvalid, match="not valid JSON"):
        parse_catalog(nested(DEEP, "object"))


# ---- the ends of the calendar ----------------------------------------------------------------

EDGE_INSTANTS = [
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
]


@pytest.mark.parametrize("value", EDGE_INSTANTS)
def test_since_at_the_ends_of_the_calendar_is_a_validation_error(client, catalog, value):
    response = client.get("/notifications/events", {"since": value})
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["since"]


@pytest.mark.parametrize("value", EDGE_INSTANTS[:3])
def test_updated_since_past_the_ends_of_the_calendar_is_a_validation_error(client, catalog, value):
    response = client.get("/channelManager", {"updatedSince": value})
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["updatedSince"]


def test_timestamps_inside_the_calendar_still_work(client, catalog):
    assert client.get("/notifications/events", {"since": "0001-01-02T00:00:00Z"}).status_code == 200
    assert client.get("/notifications/events", {"since": "9999-12-30T12:00:00+01:00"}).status_code == 200
    assert client.get("/channelManager", {"updatedSince": "0001-01-01T00:00:00Z"}).status_code == 200


@pytest.mark.parametrize(("date_from", "date_to", "field"), [
    ("0001-01-01", "0001-01-01", "from"),
    ("9999-12-31", "9999-12-31", "from"),
    ("9999-12-30", "9999-12-31", "to"),
])
def test_availability_range_at_the_ends_of_the_calendar_is_a_validation_error(client, catalog, date_from, date_to,
                                                                               field):
    response = client.get("/catalog/items/DAY-ADULT/availability", {"from": date_from, "to": date_to})
    assert_problem(response, 400, "validation_error")
    assert field in field_errors(response)


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_visit_dates_at_the_ends_of_the_calendar_are_validation_errors(client, catalog, day):
    schedule = {"componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]}
    response = client.post("/channelManager", order_body(items=[
        line("DAY-ADULT", visitDate=day), line("PARK-AND-SHOW", wallet=schedule)]), format="json")
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["items[0].visitDate", "items[1].wallet.componentSchedule[0].visitDate"]


@pytest.mark.parametrize(("data", "field"), [
    ({"date_from": "0001-01-01"}, "date_from"),
    ({"date_to": "9999-12-31"}, "date_to"),
    ({"date_from": "2026-01-01", "date_to": "9999-12-31"}, "date_to"),
])
def test_export_ranges_at_the_ends_of_the_calendar_are_form_errors(data, field):
    form = ExportForm(data={"date_field": "created", **data})
    assert not form.is_valid()
    assert list(form.errors) == [field]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_create_partner_active_from_at_the_ends_of_the_calendar_is_a_command_error(value):
    with pytest.raises(CommandError, match="--active-from"):
        call_command("create_partner", "edge-travel", "--name", "Edge", "--active-from", value, stdout=io.StringIO())


@pytest.mark.parametrize("value", ["0001-01-01 00:00:00", "9999-12-31 23:59:59"])
def test_partner_admin_active_from_at_the_ends_of_the_calendar_is_a_form_error(partner, value):
    created = PartnerCreateForm(data={"partner_id": "edge-travel", "name": "Edge", "active_from": value})
    assert not created.is_valid() and list(created.errors) == ["active_from"]
    changed = PartnerChangeForm(data={"name": partner.name, "active_from": value}, instance=partner)
    assert not changed.is_valid() and list(changed.errors) == ["active_from"]


# ---- far-future visits ------------------------------------------------------------------------


def test_visits_up_to_the_horizon_are_accepted(client, catalog, settings):
    last = settings.MAX_VISIT_HORIZON_DAYS
    assert last == 730
    response = client.post("/channelManager", order_body(items=[line(visitDate=visit_date(last))]), format="json")
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast path", "serializer"])
def test_visits_beyond_the_horizon_are_validation_errors(client, catalog, settings, monkeypatch, fast_path):
    settings.MAX_VISIT_HORIZON_DAYS = 10
    if not fast_path:
        monkeypatch.setattr(fast_parsing, "fast_parse", lambda *args: None)
    schedule = {"componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": visit_date(11), "visitTime": "19:30"}]}
    body = order_body(items=[line(visitDate=visit_date(10)), line(visitDate="9999-12-31"),
                             line("PARK-AND-SHOW", visitDate=visit_date(5), wallet=schedule)])
    response = client.post("/channelManager", body, format="json")
    problem = assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["items[1].visitDate", "items[2].wallet.componentSchedule[0].visitDate"]
    assert (venue_today() + dt.timedelta(days=10)).isoformat() in problem["errors"][0]["message"]


def test_replace_beyond_the_horizon_is_a_validation_error(client, catalog, partner):
    order = draft_order(partner)
    body = order_body(sellToOrderReference=order.sell_to_order_reference, items=[line(visitDate=visit_date(731))])
    response = client.put(f"/channelManager/{order.order_id}", body, format="json")
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["items[0].visitDate"]


def test_coupon_validity_never_runs_past_the_calendar():
    assert coupon_valid_until(dt.date(2026, 12, 1), 3) == dt.date(2026, 12, 3)
    assert coupon_valid_until(dt.date(2026, 12, 1), 0) == dt.date(2026, 12, 1)
    assert coupon_valid_until(dt.date(9999, 12, 1), 10**9) == dt.date(9999, 12, 30)
    assert coupon_valid_until(dt.date(9999, 12, 31), 5) == dt.date(9999, 12, 31)


def test_an_order_stored_with_a_far_visit_still_issues_with_a_pass_and_a_page(client, anon_client, catalog, partner,
                                                                               settings, tmp_path):
    """Rows written before the horizon existed: issuance, the pass and the page must not overflow."""
    configure_passkit(settings, tmp_path)
    PackageCoupon.objects.update(valid_days=10**6)
    order = submit_order(partner, order_body(items=[line("PARK-AND-SHOW", visitTime="19:30")]), settle=False)
    OrderLine.objects.filter(order=order).update(visit_date=dt.date(9999, 12, 31))
    issue_order(order_pk=order.pk)
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED, order.status_message
    wallet = client.get(f"/channelManager/{order.order_id}").json()["items"][0]["wallets"][0]
    coupon = next(asset for asset in wallet["assets"] if asset["assetType"] == "coupon")
    assert coupon["validUntil"] == "9999-12-31"
    path = urlsplit(wallet["manifestUrl"]).path
    assert anon_client.get(path, HTTP_ACCEPT="text/html").status_code == 200
    assert anon_client.get(path, HTTP_ACCEPT="application/json").status_code == 200
    assert anon_client.get(path + "/pass.pkpass").status_code == 200


# ---- cursors, references, headers ------------------------------------------------------------

ORDER_CURSORS = ["9" * 40, str(2**63), str(2**64), "²", "٣", "-1", "0", " 1", "1\n"]


@pytest.mark.parametrize("pk", ORDER_CURSORS)
def test_order_cursors_naming_impossible_rows_are_validation_errors(client, catalog, pk):
    response = client.get("/channelManager", {"cursor": encode_cursor("o", pk)})
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["cursor"]


@pytest.mark.parametrize(("created", "pk"), [
    ("2026-01-01T00:00:00+00:00", "9" * 40), ("2026-01-01T00:00:00+00:00", str(2**63)),
    ("2026-01-01T00:00:00+00:00", "²"), ("0001-01-01T00:00:00+01:00", "1"), ("9999-12-31T23:59:59-01:00", "1"),
    ("2026-01-01T00:00:00", "1"),
])
def test_event_cursors_naming_impossible_rows_are_validation_errors(client, catalog, created, pk):
    response = client.get("/notifications/events", {"cursor": encode_cursor("e", created, pk)})
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["cursor"]


def test_the_largest_row_id_is_still_a_cursor(client, catalog):
    assert client.get("/channelManager", {"cursor": encode_cursor("o", 2**63 - 1)}).status_code == 200
    assert client.get("/notifications/events", {"cursor": encode_cursor("e", "2026-01-01T00:00:00+00:00",
                                                                        2**63 - 1)}).status_code == 200


@pytest.mark.parametrize("reference", ["A\x01B", "A\tB", "PAY\x1b[31m", "A\x7fB", "A\x85B", "A\nB"])
def test_control_characters_in_references_are_validation_errors(client, catalog, partner, reference):
    for field in ("sellToOrderReference", "paymentReference"):
        response = client.post("/channelManager", order_body(**{field: reference}), format="json")
        assert_problem(response, 400, "validation_error")
        assert field_errors(response) == [field]
    response = client.post(f"/channelManager/{draft_order(partner).order_id}/confirm",
                           {"paymentReference": reference}, format="json")
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["paymentReference"]


def test_a_wallet_reference_with_a_trailing_newline_is_a_validation_error(client, catalog):
    body = order_body(items=[line(wallet={"externalReferenceNumbers": ["ACME-T-1\n"]})])
    response = client.post("/channelManager", body, format="json")
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["items[0].wallet.externalReferenceNumbers[0]"]


def test_a_lone_surrogate_quoted_back_in_an_error_is_escaped_not_a_500(client, catalog):
    body = '{"eventType": "\\ud800", "url": "https://hooks.partner.example/cm"}'
    response = raw(client, "POST", "/notifications/subscriptions", body)
    problem = assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["eventType"]
    assert "\\ud800" in problem["errors"][0]["message"]


@pytest.mark.parametrize("key", ["\x00", "key\x00", "key\n", "\x7f"])
def test_an_idempotency_key_with_control_characters_is_a_validation_error(client, catalog, key):
    response = client.post("/channelManager", order_body(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert_problem(response, 400, "validation_error")
    assert field_errors(response) == ["Idempotency-Key"]
    assert Order.objects.count() == 0


def test_oversized_headers_are_refused_or_ignored(client, anon_client, catalog):
    huge = "x" * 100_000
    response = client.post("/channelManager", order_body(), format="json", HTTP_IDEMPOTENCY_KEY=huge)
    assert_problem(response, 400, "validation_error")
    response = client.post("/channelManager", order_body(), format="json", HTTP_X_REQUEST_ID=huge)
    assert response.status_code == 202
    assert response["X-Request-Id"] != huge and len(response["X-Request-Id"]) <= 128
    response = client.get("/catalog/items", HTTP_IF_NONE_MATCH=huge, HTTP_IF_MODIFIED_SINCE=huge)
    assert response.status_code == 200
    assert_problem(anon_client.get("/channelManager", HTTP_AUTHORIZATION="Bearer " + huge), 401, "not_authenticated")


# ---- every parameter and field of every operation, with hostile values -----------------------
#
# The operations, their parameters and their request bodies are read from the OpenAPI document
# the API serves at /api/schema/ (generated here without a request; test_the_fuzzed_operations_
# are_those_the_api_serves checks it is the same list). Each (operation, location) pair is one
# test case: a valid request with one parameter, header or body member (or the whole body)
# replaced by a hostile value. The only assertion: success, or a 4xx problem+json.

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
EXTRA_HEADERS = ["X-Request-Id"]  # not documented per operation, but every request may carry it
MAX_EXAMPLES = 6  # per location: about 100 locations, well under a minute in all

# Spliced into the encoded body in place of these strings: what json.dumps cannot write itself.
RAW_JSON = {
    "__DEEP_ARRAY__": nested(DEEP),
    "__DEEP_OBJECT__": nested(DEEP, "object"),
    "__HUGE_NUMBER__": "9" * 5000,  # over Python's 4300-digit int conversion limit
    "__INFINITY__": "1e999",
    "__NAN__": "NaN",
}

HOSTILE_TEXT = [
    "", " ", "\x00", "\x01", "A\x1fB", "\x7f", "\x85", "\u2028", "\u202e", "\ufeff", "😀" * 70, "x" * 100_000,
    "0001-01-01", "0001-01-02", "9999-12-31", "9999-12-30", "0000-00-00", "2026-02-30", "2026-1-5",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999-23:59", "9999-12-31T23:59:59+99:99", "24:00", "99:99", "23:59:60",
    "-1", "0", "9" * 40, "1e999", "NaN", "Infinity", "null", "true", "[]", "{}", "%00", "../../etc/passwd",
    "<script>alert(1)</script>", "' OR 1=1 --", "=cmd|' /C calc'!A0", "ACME-1\n", "\r\nX-Injected: 1",
    encode_cursor("o", "9" * 40), encode_cursor("o", "²"), encode_cursor("o", -1),
    encode_cursor("e", "0001-01-01T00:00:00+01:00", 1), encode_cursor("e", "2026-01-01T00:00:00Z", "9" * 40),
]
OFFSETS = ["Z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+14:00"]

texts = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.dates().map(dt.date.isoformat),
    st.builds(lambda moment, offset: moment.isoformat() + offset, st.datetimes(), st.sampled_from(OFFSETS)),
    st.integers().map(str),
)
json_scalars = st.one_of(
    texts, st.sampled_from([None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**4000, 1e308, -0.0, "\ud800"]),
    st.sampled_from(list(RAW_JSON)), st.integers(), st.floats(allow_nan=False),
)
json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                   max_size=3),
    max_leaves=6,
)
# What arrives in a header: Latin-1 text (as WSGI servers decode it), some of it hostile.
header_texts = st.one_of(
    st.sampled_from([t for t in HOSTILE_TEXT if t.isascii() or all(ord(c) < 256 for c in t)]),
    st.text(st.characters(max_codepoint=255), max_size=40),
)


def resolve(schema: dict) -> dict:
    """A schema with its $ref followed and a nullable oneOf [X, null] reduced to X."""
    while True:
        if "$ref" in schema:
            schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "oneOf" in schema or "anyOf" in schema:
            choices = [s for s in schema.get("oneOf", schema.get("anyOf")) if s.get("type") != "null"]
            schema = choices[0]
        elif "allOf" in schema:
            schema = schema["allOf"][0]
        else:
            return schema


def body_paths(schema: dict, prefix: tuple = ()) -> list[tuple]:
    """Every member of a request body schema, containers included, as paths of keys and indexes."""
    schema = resolve(schema)
    paths = [prefix]
    if schema.get("type") == "object" or "properties" in schema:
        for name, member in schema.get("properties", {}).items():
            paths.extend(body_paths(member, (*prefix, name)))
    elif schema.get("type") == "array":
        paths.extend(body_paths(schema["items"], (*prefix, 0)))
    return paths


def locations() -> list[tuple[str, str, str, Any]]:
    """(operationId, method, path template, (where, name or body path)) for every location."""
    found = []
    for path, methods in SCHEMA["paths"].items():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            op = (operation["operationId"], method.upper(), path)
            for parameter in operation.get("parameters", []):
                found.append((*op, (parameter["in"], parameter["name"])))
            for header in EXTRA_HEADERS:
                found.append((*op, ("header", header)))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                found.extend((*op, ("body", member)) for member in body_paths(body["schema"]))
    return found


LOCATIONS = locations()


def location_id(location: tuple) -> str:
    operation, _, _, (where, name) = location
    if where == "body":
        name = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in name) or "$"
    return f"{operation}:{where}:{name}"


_refs = itertools.count(1)


class Baseline:
    """A valid request for an operation, fresh for each example (new references), so that a
    hostile value is judged deep inside: bodies are parsed and validated before an order's state
    is looked at, so one Draft order per test case serves every example."""

    def __init__(self, partner, operation: str, path: str, *, order: Order | None) -> None:
        n = next(_refs)
        day = visit_date()
        self.body: Any = None
        self.query: dict[str, str] = {}
        self.headers: dict[str, str] = {}
        kwargs = {"itemId": "PARK-AND-SHOW", "subscriptionId": "00000000-0000-0000-0000-000000000000"}
        if order is not None:
            kwargs["orderId"] = str(order.order_id)
        if operation == "deleteSubscription":
            kwargs["subscriptionId"] = str(SubscriptionFactory(partner=partner).subscription_id)
        if operation in ("createOrder", "replaceOrder"):
            self.body = order_body(items=[
                {"itemId": "PARK-AND-SHOW", "quantity": 1, "visitDate": day, "visitTime": None,
                 "wallet": {"externalReferenceNumbers": [f"HOSTILE-{n}"],
                            "componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": day, "visitTime": "19:30"}]}},
            ])
            if operation == "replaceOrder":
                self.body.update(sellToOrderReference=order.sell_to_order_reference, orderId=str(order.order_id),
                                 buyFromOrderReference=order.buy_from_order_reference)
        elif operation == "confirmOrder":
            self.body = {"paymentReference": f"PAY-{n}"}
        elif operation == "createSubscription":
            self.body = {"eventType": "ota_cm_order_processed", "url": f"https://hooks{n}.partner.example/cm"}
        elif operation == "getAvailability":
            self.query = {"from": visit_date(1), "to": visit_date(7)}
        elif operation in ("gateScan", "uploadGateScans", "syncGate"):  # a gate device's, with its own token
            from wallets.gate.devices import create_gate_device

            _, token = create_gate_device(name=f"Gate {n}")
            self.headers["Authorization"] = f"Bearer {token}"
            if operation == "gateScan":
                self.body = {"code": f"NO-SUCH-CODE-{n}"}
            elif operation == "uploadGateScans":
                self.body = {"scans": [{"code": f"NO-SUCH-CODE-{n}", "scannedAt": "2026-01-01T10:00:00Z"}]}
        self.path_kwargs = kwargs
        self.path = path

    def set(self, where: str, name: Any, value: Any) -> None:
        if where == "query":
            self.query[name] = value
        elif where == "path":
            self.path_kwargs[name] = value
        elif where == "header":
            self.headers[name] = value
        elif not name:
            self.body = value
        else:
            container = self.body
            for key, nxt in itertools.pairwise(name):
                if isinstance(container, list):
                    while len(container) <= key:
                        container.append({} if isinstance(nxt, str) else [])
                    container = container[key]
                else:
                    container = container.setdefault(key, {} if isinstance(nxt, str) else [])
            last = name[-1]
            if isinstance(container, list):
                while len(container) <= last:
                    container.append(None)
            container[last] = value

    def send(self, client, method: str):
        url = self.path
        for name, value in self.path_kwargs.items():
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in self.headers.items()}
        if self.body is None:
            return client.generic(method, url, b"", QUERY_STRING=_query(self.query), **extra)
        data = json.dumps(self.body)
        for marker, text in RAW_JSON.items():
            data = data.replace(f'"{marker}"', text)
        return client.generic(method, url, data.encode(), content_type="application/json",
                              QUERY_STRING=_query(self.query), **extra)


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())


def assert_answered_cleanly(response, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"] == PROBLEM, (what, response.status_code, response.content[:300])
        body = json.loads(response.content)
        assert body["status"] == response.status_code and body["code"], what


@pytest.fixture
def public_dns(monkeypatch):
    """Webhook host names resolve to a public address, without the network."""
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr("notifications.targets.socket.getaddrinfo", getaddrinfo)


def with_examples(values: list[Any]):
    """Hypothesis's explicit examples: every value of the list is tried, before the generated ones."""
    def decorate(test):
        for value in reversed(values):
            test = example(value=value)(test)
        return test
    return decorate


# Tried at every location, whatever the generator draws: the classes of [2.3].
CLASSIC_TEXT = [
    "", "\x00", "\x01", "x" * 100_000, "9" * 40, "-1", "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "\u202e", encode_cursor("o", "9" * 40), encode_cursor("o", "²"),
    encode_cursor("e", "0001-01-01T00:00:00+01:00", 1),
]
CLASSIC_JSON = [*CLASSIC_TEXT, *RAW_JSON, None, True, 2**63, 10**4000, -1, 1.5, [], {}, [None], {"": None}, "\ud800"]
VALUES = {"body": (json_values, CLASSIC_JSON), "header": (header_texts, CLASSIC_TEXT)}


@pytest.mark.parametrize("location", LOCATIONS, ids=location_id)
def test_hostile_values_anywhere_answer_success_or_a_4xx_problem(client, catalog, partner, public_dns, location):
    operation, method, path, (where, name) = location
    generated, classic = VALUES.get(where, (texts, CLASSIC_TEXT))
    order = draft_order(partner) if "{orderId}" in path else None

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @with_examples(classic)
    @given(value=generated)
    def check(value: Any) -> None:
        request = Baseline(partner, operation, path, order=order)
        request.set(where, name, value)
        assert_answered_cleanly(request.send(client, method), f"{location_id(location)} = {value!r:.200}")

    check()


def test_the_fuzzed_operations_are_those_the_api_serves(anon_client):
    served = yaml.safe_load(anon_client.get("/api/schema/").content)
    assert served["paths"] == SCHEMA["paths"]
    assert {loc[0] for loc in LOCATIONS} == {
        op["operationId"] for methods in served["paths"].values() for op in methods.values()
    }
