"""listCatalogItems and getAvailability: the catalog partners read, and the capacity left as issuance counts it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import jsonschema
import pytest
import yaml
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.http import http_date

from catalog.models import Capacity, Item, ItemType, Venue
from catalog.selectors import get_venue, venue_today
from catalog.services import CapacityClaim, reserve_capacity
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from tests.factories import ItemFactory, PackageComponentFactory, TimeSlotFactory
from tests.payloads import line, order_body
from tests.test_api_auth import assert_problem

pytestmark = pytest.mark.django_db

ITEMS = "/catalog/items"


def day(offset: int) -> dt.date:
    """A visit date `offset` days from the venue's today."""
    return venue_today() + dt.timedelta(days=offset)


def get_availability(client, item_id: str, date_from: dt.date, date_to: dt.date | None = None, **headers):
    date_to = date_to or date_from
    return client.get(
        f"/catalog/items/{item_id}/availability",
        {"from": date_from.isoformat(), "to": date_to.isoformat()},
        **headers,
    )


def entries(client, item_id: str, date_from: dt.date, date_to: dt.date | None = None) -> list[dict]:
    response = get_availability(client, item_id, date_from, date_to)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["itemId"] == item_id
    return body["results"]


def figures(entry: dict) -> tuple:
    return entry["capacity"], entry["remaining"], entry["status"]


def reserve(item: Item, visit_date: dt.date, quantity: int, visit_time: dt.time | None = None) -> None:
    """Take places the way issuance does."""
    with transaction.atomic():
        reserve_capacity(claims=[CapacityClaim(item.pk, visit_date, visit_time, quantity)])


def submit(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def issue(order_id: str) -> str:
    issue_order(order_pk=Order.objects.get(order_id=order_id).pk)
    return Order.objects.get(order_id=order_id).status


# ---- listCatalogItems -------------------------------------------------------------------------


def test_list_shows_the_active_items_by_item_id(client, catalog):
    ItemFactory(item_id="AAA-RETIRED", active=False)
    response = client.get(ITEMS)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [i["itemId"] for i in results] == ["DAY-ADULT", "FAMILY-GROUP", "PARK-AND-SHOW", "SHOW-EVENING"]


def test_list_describes_what_an_order_line_needs(client, catalog):
    Item.objects.filter(item_id="DAY-ADULT").update(sale_from=dt.date(2026, 1, 1), sale_until=dt.date(2027, 12, 31))
    by_id = {i["itemId"]: i for i in client.get(ITEMS).json()["results"]}
    assert by_id["DAY-ADULT"] == {
        "itemId": "DAY-ADULT", "name": "Day ticket, adult", "itemType": "ticket", "price": "49.50",
        "currency": "EUR", "saleFrom": "2026-01-01", "saleUntil": "2027-12-31", "timed": False,
        "timeSlots": [], "maxGroupSize": None, "components": [], "coupons": [],
    }
    assert by_id["FAMILY-GROUP"]["itemType"] == "group_ticket"
    assert by_id["FAMILY-GROUP"]["maxGroupSize"] == 6
    assert by_id["FAMILY-GROUP"]["price"] == "150.00"
    assert by_id["SHOW-EVENING"]["timed"] is True
    assert by_id["SHOW-EVENING"]["timeSlots"] == ["19:30", "21:00"]
    assert by_id["SHOW-EVENING"]["saleFrom"] is None and by_id["SHOW-EVENING"]["saleUntil"] is None
    package = by_id["PARK-AND-SHOW"]
    assert package["itemType"] == "package" and package["price"] == "65.00"
    assert package["components"] == [
        {"itemId": "DAY-ADULT", "name": "Day ticket, adult"},
        {"itemId": "SHOW-EVENING", "name": "Evening show"},
    ]
    assert package["coupons"] == [{"code": "FNB10", "description": "10% off food and drinks"}]


def test_list_takes_the_same_number_of_queries_for_any_number_of_items(
    client, catalog, django_assert_max_num_queries, monkeypatch
):
    monkeypatch.setattr("catalog.selectors.VENUE_CACHE_SECONDS", 3600.0)
    client.get(ITEMS)  # the venue is cached from here on
    with CaptureQueriesContext(connection) as few:
        assert client.get(ITEMS).status_code == 200
    for n in range(10):
        package = ItemFactory(item_id=f"PKG-{n}", item_type=ItemType.PACKAGE, price=Decimal("10.00"))
        show = ItemFactory(item_id=f"SHOW-{n}")
        TimeSlotFactory(item=show, time=dt.time(18, 0))
        TimeSlotFactory(item=show, time=dt.time(20, 0))
        PackageComponentFactory(package=package, component=show)
    with django_assert_max_num_queries(len(few)):
        assert len(client.get(ITEMS).json()["results"]) == 24


# ---- statuses ---------------------------------------------------------------------------------


def test_an_untimed_item_has_one_entry_per_date_available_while_at_least_half_is_left(client, catalog):
    results = entries(client, "DAY-ADULT", day(1), day(3))
    assert [(e["visitDate"], e["visitTime"]) for e in results] == [(day(n).isoformat(), None) for n in (1, 2, 3)]
    assert {figures(e) for e in results} == {(5000, 5000, "AVAILABLE")}


def test_under_half_left_is_limited(client, catalog):
    reserve(catalog["DAY-ADULT"], day(5), 2500)
    reserve(catalog["DAY-ADULT"], day(6), 2501)
    half, under_half = entries(client, "DAY-ADULT", day(5), day(6))
    assert figures(half) == (5000, 2500, "AVAILABLE")
    assert figures(under_half) == (5000, 2499, "LIMITED")


def test_nothing_left_is_sold_out(client, catalog):
    item = ItemFactory(item_id="TOUR", capacity_per_day=3)
    reserve(item, day(5), 3)
    assert figures(entries(client, "TOUR", day(5))[0]) == (3, 0, "SOLD_OUT")


def test_no_capacity_limit_is_freesale(client, catalog):
    reserve(catalog["FAMILY-GROUP"], day(5), 4)  # counted, but never limited
    results = entries(client, "FAMILY-GROUP", day(4), day(5))
    assert [figures(e) for e in results] == [(None, None, "FREESALE")] * 2


def test_dates_outside_the_sale_window_are_closed_and_its_bounds_are_inclusive(client, catalog):
    ItemFactory(item_id="SEASON", capacity_per_day=10, sale_from=day(2), sale_until=day(4))
    results = entries(client, "SEASON", day(1), day(5))
    assert [e["status"] for e in results] == ["CLOSED", "AVAILABLE", "AVAILABLE", "AVAILABLE", "CLOSED"]
    assert figures(results[0]) == (10, 0, "CLOSED")


def test_an_inactive_item_answers_200_with_every_entry_closed(client, catalog):
    Item.objects.filter(item_id="SHOW-EVENING").update(active=False)
    results = entries(client, "SHOW-EVENING", day(1), day(3))
    assert len(results) == 6
    assert {(e["status"], e["remaining"]) for e in results} == {("CLOSED", 0)}


def test_dates_before_the_venues_today_are_closed(client, catalog):
    results = entries(client, "DAY-ADULT", day(-2), day(1))
    assert [e["status"] for e in results] == ["CLOSED", "CLOSED", "AVAILABLE", "AVAILABLE"]


# ---- timed items and rows ---------------------------------------------------------------------


def test_a_timed_item_has_one_entry_per_date_and_slot_in_date_then_time_order(client, catalog):
    reserve(catalog["SHOW-EVENING"], day(2), 150, dt.time(19, 30))
    results = entries(client, "SHOW-EVENING", day(1), day(2))
    assert [(e["visitDate"], e["visitTime"]) for e in results] == [
        (day(1).isoformat(), "19:30"), (day(1).isoformat(), "21:00"),
        (day(2).isoformat(), "19:30"), (day(2).isoformat(), "21:00"),
    ]
    assert [figures(e) for e in results] == [
        (200, 200, "AVAILABLE"), (200, 200, "AVAILABLE"), (200, 50, "LIMITED"), (200, 200, "AVAILABLE"),
    ]


def test_an_existing_row_keeps_its_own_capacity_as_issuance_does(client, catalog):
    reserve(catalog["DAY-ADULT"], day(5), 1)
    Item.objects.filter(item_id="DAY-ADULT").update(capacity_per_day=10)
    with_row, without_row = entries(client, "DAY-ADULT", day(5), day(6))
    assert figures(with_row) == (5000, 4999, "AVAILABLE")
    assert figures(without_row) == (10, 10, "AVAILABLE")


# ---- packages ---------------------------------------------------------------------------------


def test_a_package_has_one_untimed_entry_per_date(client, catalog):
    results = entries(client, "PARK-AND-SHOW", day(1), day(2))
    assert [(e["visitDate"], e["visitTime"]) for e in results] == [(day(n).isoformat(), None) for n in (1, 2)]
    # DAY-ADULT has 5000 left, SHOW-EVENING 200 in its best slot: the package has 200.
    assert {figures(e) for e in results} == {(200, 200, "AVAILABLE")}


def test_a_package_counts_the_timed_components_slot_with_the_most_left(client, catalog):
    show = catalog["SHOW-EVENING"]
    reserve(show, day(3), 150, dt.time(19, 30))
    reserve(show, day(3), 10, dt.time(21, 0))
    assert figures(entries(client, "PARK-AND-SHOW", day(3))[0]) == (200, 190, "AVAILABLE")


def test_a_package_has_what_its_scarcest_component_has(client, catalog):
    reserve(catalog["DAY-ADULT"], day(3), 4900)
    assert figures(entries(client, "PARK-AND-SHOW", day(3))[0]) == (5000, 100, "LIMITED")
    reserve(catalog["DAY-ADULT"], day(3), 100)
    assert figures(entries(client, "PARK-AND-SHOW", day(3))[0]) == (5000, 0, "SOLD_OUT")


def test_a_package_is_closed_when_a_component_is_not_on_sale_that_date(client, catalog):
    Item.objects.filter(item_id="SHOW-EVENING").update(sale_until=day(1))
    assert [e["status"] for e in entries(client, "PARK-AND-SHOW", day(1), day(2))] == ["AVAILABLE", "CLOSED"]


@pytest.mark.parametrize("inactive", ["PARK-AND-SHOW", "DAY-ADULT"])
def test_a_package_is_closed_when_it_or_a_component_is_inactive(client, catalog, inactive):
    Item.objects.filter(item_id=inactive).update(active=False)
    assert {e["status"] for e in entries(client, "PARK-AND-SHOW", day(1), day(3))} == {"CLOSED"}


def test_a_package_of_unlimited_components_is_freesale(client, catalog):
    package = ItemFactory(item_id="OPEN-PASS", item_type=ItemType.PACKAGE)
    PackageComponentFactory(package=package, component=ItemFactory(item_id="MUSEUM"))
    garden = ItemFactory(item_id="GARDEN")
    TimeSlotFactory(item=garden, time=dt.time(10, 0), capacity=None)
    PackageComponentFactory(package=package, component=garden)
    assert figures(entries(client, "OPEN-PASS", day(1))[0]) == (None, None, "FREESALE")


# ---- the same figures as issuance, through the API ---------------------------------------------


def test_remaining_drops_when_an_order_issues_and_returns_when_it_is_cancelled(client, catalog):
    visit = day(30)
    order = submit(client, items=[line("DAY-ADULT", 2, visitDate=visit.isoformat())])
    assert entries(client, "DAY-ADULT", visit)[0]["remaining"] == 5000  # submitted: nothing held yet
    assert issue(order["orderId"]) == OrderStatus.ISSUED
    assert figures(entries(client, "DAY-ADULT", visit)[0]) == (5000, 4998, "AVAILABLE")
    response = client.delete(f"/channelManager/{order['orderId']}")
    assert response.status_code == 200 and response.json()["status"] == "Cancelled"
    assert entries(client, "DAY-ADULT", visit)[0]["remaining"] == 5000


def test_a_draft_holds_capacity_until_it_is_replaced(client, catalog):
    visit = day(30)
    order = submit(
        client, paymentReference=None, items=[line("SHOW-EVENING", 3, visitDate=visit.isoformat(), visitTime="19:30")]
    )
    assert issue(order["orderId"]) == OrderStatus.DRAFT
    early, late = entries(client, "SHOW-EVENING", visit)
    assert (early["remaining"], late["remaining"]) == (197, 200)

    body = order_body(
        sellToOrderReference=order["sellToOrderReference"], paymentReference=None,
        items=[line("SHOW-EVENING", 1, visitDate=visit.isoformat(), visitTime="21:00")],
    )
    assert client.put(f"/channelManager/{order['orderId']}", body, format="json").status_code == 202
    early, late = entries(client, "SHOW-EVENING", visit)
    assert (early["remaining"], late["remaining"]) == (200, 200)
    assert issue(order["orderId"]) == OrderStatus.DRAFT
    early, late = entries(client, "SHOW-EVENING", visit)
    assert (early["remaining"], late["remaining"]) == (200, 199)


def test_a_package_order_is_counted_on_its_components(client, catalog):
    visit = day(30).isoformat()
    schedule = {"componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": visit, "visitTime": "21:00"}]}
    order = submit(client, items=[line("PARK-AND-SHOW", 2, visitDate=visit, wallet=schedule)])
    assert issue(order["orderId"]) == OrderStatus.ISSUED
    assert entries(client, "DAY-ADULT", day(30))[0]["remaining"] == 4998
    assert [e["remaining"] for e in entries(client, "SHOW-EVENING", day(30))] == [200, 198]
    assert figures(entries(client, "PARK-AND-SHOW", day(30))[0]) == (200, 200, "AVAILABLE")


# ---- the range and the item ---------------------------------------------------------------------


def test_a_range_of_92_dates_is_answered(client, catalog):
    assert len(entries(client, "DAY-ADULT", day(1), day(92))) == 92


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({"from": "2026-01-01", "to": "2026-04-03"}, ["to"]),  # 93 dates
        ({"from": "2026-03-02", "to": "2026-03-01"}, ["to"]),  # reversed
        ({"to": "2026-03-01"}, ["from"]),
        ({"from": "2026-03-01"}, ["to"]),
        ({}, ["from", "to"]),
        ({"from": "2026-02-30", "to": "2026-03-01"}, ["from"]),
        ({"from": "2026-3-1", "to": "2026-03-01"}, ["from"]),
        ({"from": "2026-03-01", "to": "tomorrow"}, ["to"]),
        ({"from": "", "to": "2026-03-01T00:00"}, ["from", "to"]),
        ({"from": "2026-03-01\x00", "to": "2026-03-01"}, ["from"]),
    ],
)
def test_a_bad_range_is_400_validation_error_naming_the_parameter(client, catalog, query, fields):
    response = client.get("/catalog/items/DAY-ADULT/availability", query)
    problem = assert_problem(response, 400, "validation_error")
    assert [e["field"] for e in problem["errors"]] == fields


@pytest.mark.parametrize("item_id", ["NOPE", "x" * 65, "DAY%00ADULT"])
def test_an_unknown_item_is_404_not_found(client, catalog, item_id):
    response = client.get(f"/catalog/items/{item_id}/availability", {"from": "2026-03-01", "to": "2026-03-01"})
    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize("path", [ITEMS, "/catalog/items/DAY-ADULT/availability?from=2026-03-01&to=2026-03-01"])
def test_partner_authentication_applies(anon_client, client, partner, catalog, path):
    assert_problem(anon_client.get(path), 401, "not_authenticated")
    partner.enabled = False
    partner.save()
    assert_problem(client.get(path), 403, "partnership_disabled")


# ---- conditional requests -----------------------------------------------------------------------


def backdate_catalog(hours: int = 1) -> dt.datetime:
    when = timezone.now().replace(microsecond=0) - dt.timedelta(hours=hours)
    Item.objects.update(updated_at=when)
    Venue.objects.update(updated_at=when)
    return when


@pytest.mark.parametrize("item_id", ["DAY-ADULT", None])
def test_an_unchanged_answer_is_304_to_if_none_match(client, catalog, item_id):
    def fetch(**headers):
        if item_id is None:
            return client.get(ITEMS, **headers)
        return get_availability(client, item_id, day(1), day(10), **headers)

    first = fetch()
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith(('"', 'W/"'))
    assert set(first["Cache-Control"].replace(" ", "").split(",")) == {"private", "max-age=0", "must-revalidate"}
    again = fetch(HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag

    if item_id is None:
        Item.objects.filter(item_id="DAY-ADULT").update(name="Day ticket")
    else:
        reserve(catalog[item_id], day(2), 1)
    changed = fetch(HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_last_modified_is_the_newest_change_and_if_modified_since_is_honoured(client, catalog):
    when = backdate_catalog()
    first = get_availability(client, "SHOW-EVENING", day(1), day(10))
    assert first["Last-Modified"] == http_date(when.timestamp())
    assert get_availability(client, "SHOW-EVENING", day(1), day(10),
                            HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304

    reserve(catalog["SHOW-EVENING"], day(3), 2, dt.time(21, 0))
    row_changed = Capacity.objects.get().updated_at
    changed = get_availability(client, "SHOW-EVENING", day(1), day(10), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert changed.status_code == 200
    assert changed["Last-Modified"] == http_date(row_changed.timestamp())


def test_a_package_is_modified_when_a_component_is(client, catalog):
    backdate_catalog()
    first = get_availability(client, "PARK-AND-SHOW", day(1))
    Item.objects.filter(item_id="SHOW-EVENING").update(updated_at=timezone.now(), sale_until=day(0))
    again = get_availability(client, "PARK-AND-SHOW", day(1), HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert again.status_code == 200
    assert again.json()["results"][0]["status"] == "CLOSED"


def test_a_range_that_turned_past_is_modified_at_the_venues_midnight(client, catalog):
    backdate_catalog(hours=72)
    response = get_availability(client, "DAY-ADULT", day(-3), day(3))
    midnight = dt.datetime.combine(venue_today(), dt.time.min, tzinfo=get_venue().tzinfo)
    assert response["Last-Modified"] == http_date(midnight.timestamp())


def test_the_list_is_modified_when_an_item_is_deactivated(client, catalog):
    backdate_catalog()
    first = client.get(ITEMS)
    Item.objects.filter(item_id="FAMILY-GROUP").update(active=False, updated_at=timezone.now())
    again = client.get(ITEMS, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert again.status_code == 200
    assert "FAMILY-GROUP" not in {i["itemId"] for i in again.json()["results"]}


# ---- one query plan for any range -----------------------------------------------------------------


@pytest.mark.parametrize("item_id", ["DAY-ADULT", "SHOW-EVENING", "PARK-AND-SHOW"])
def test_92_dates_take_no_more_queries_than_one(
    client, catalog, item_id, django_assert_max_num_queries, monkeypatch
):
    monkeypatch.setattr("catalog.selectors.VENUE_CACHE_SECONDS", 3600.0)
    for n in range(0, 92, 7):
        reserve(catalog["DAY-ADULT"], day(n + 1), 1)
        reserve(catalog["SHOW-EVENING"], day(n + 1), 1, dt.time(19, 30))
    get_availability(client, item_id, day(1))  # the venue is cached from here on
    with CaptureQueriesContext(connection) as one_day:
        assert len(entries(client, item_id, day(1))) in (1, 2)
    assert len(one_day) <= 6  # the API key, the item with its components, coupons and slots, the capacity rows
    with django_assert_max_num_queries(len(one_day)):
        assert len(entries(client, item_id, day(1), day(92))) in (92, 184)


# ---- the OpenAPI document -----------------------------------------------------------------------


@pytest.fixture
def schema(anon_client):
    response = anon_client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_schema_documents_both_operations(schema):
    listing = schema["paths"]["/catalog/items"]["get"]
    assert listing["operationId"] == "listCatalogItems"
    availability = schema["paths"]["/catalog/items/{itemId}/availability"]["get"]
    assert availability["operationId"] == "getAvailability"
    params = {p["name"]: p for p in availability["parameters"]}
    assert params["from"]["in"] == "query" and params["from"]["required"] is True
    assert params["to"]["in"] == "query" and params["to"]["required"] is True
    for status in ("200", "304", "400", "401", "403", "404"):
        assert status in availability["responses"], status
    assert "MOST remaining" in availability["description"]


@pytest.mark.parametrize(
    ("path", "component"),
    [
        (ITEMS, "CatalogItemList"),
        ("/catalog/items/DAY-ADULT/availability", "Availability"),
        ("/catalog/items/SHOW-EVENING/availability", "Availability"),
        ("/catalog/items/PARK-AND-SHOW/availability", "Availability"),
        ("/catalog/items/FAMILY-GROUP/availability", "Availability"),
    ],
)
def test_answers_match_the_documented_schema(client, catalog, schema, path, component):
    reserve(catalog["SHOW-EVENING"], day(2), 199, dt.time(19, 30))
    body = client.get(path, {"from": day(-1).isoformat(), "to": day(3).isoformat()}).json()
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{component}", "components": {"schemas": schema["components"]["schemas"]}}
    )
    assert [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)] == []


def test_problems_match_the_documented_schema(client, catalog, schema):
    body = client.get("/catalog/items/DAY-ADULT/availability", {"from": "nope"}).json()
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/Problem", "components": {"schemas": schema["components"]["schemas"]}}
    )
    assert list(validator.iter_errors(body)) == []
