"""OCTO supplier, products and availability (every answer checked against octo-types' schema)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from catalog.loading import load_catalog
from catalog.models import Capacity, TimeSlot
from tests.octo_helpers import OctoClient, availability_id, visit_day

pytestmark = pytest.mark.django_db


@pytest.fixture
def octo(client, catalog) -> OctoClient:
    return OctoClient(client)


def test_the_supplier_is_the_venue(octo):
    status, body = octo.get("/octo/supplier")
    assert status == 200
    assert body["name"] and body["endpoint"].endswith("/octo")


def test_each_item_is_a_product_with_one_default_option_and_one_unit(octo):
    status, products = octo.get("/octo/products")
    assert status == 200
    by_id = {p["id"]: p for p in products}
    assert set(by_id) == {"DAY-ADULT", "FAMILY-GROUP", "SHOW-EVENING", "PARK-AND-SHOW"}
    for product in products:
        assert [o["id"] for o in product["options"]] == ["DEFAULT"]
        assert len(product["options"][0]["units"]) == 1


def test_timed_items_are_start_time_and_untimed_items_opening_hours(octo):
    _, products = octo.get("/octo/products")
    by_id = {p["id"]: p for p in products}
    assert by_id["SHOW-EVENING"]["availabilityType"] == "START_TIME"
    assert by_id["SHOW-EVENING"]["options"][0]["availabilityLocalStartTimes"] == ["19:30", "21:00"]
    assert by_id["DAY-ADULT"]["availabilityType"] == "OPENING_HOURS"
    # The package's one timed component gives it its start times.
    assert by_id["PARK-AND-SHOW"]["availabilityType"] == "START_TIME"


def test_a_group_ticket_unit_carries_the_group_size(octo):
    _, product = octo.get("/octo/products/FAMILY-GROUP")
    unit = product["options"][0]["units"][0]
    assert unit["id"] == "GROUP"
    assert unit["restrictions"]["paxCount"] == 6


def test_an_unknown_product_is_invalid_product_id(octo):
    status, body = octo.get("/octo/products/NOPE")
    assert status == 400
    assert body["error"] == "INVALID_PRODUCT_ID" and body["productId"] == "NOPE"


def test_the_capabilities_header_is_answered(octo):
    octo.get("/octo/products", HTTP_OCTO_CAPABILITIES="octo/pricing, octo/content")
    assert "Octo-Capabilities" in octo.last


def test_without_a_key_octo_answers_unauthorized(anon_client, catalog):
    status, body = OctoClient(anon_client).get("/octo/products")
    assert status == 401
    assert body["error"] == "UNAUTHORIZED"


def test_an_unknown_path_answers_octo_json_not_html(octo):
    response = octo.client.get("/octo/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "BAD_REQUEST"


def test_availability_ids_are_the_slots_local_starts(octo):
    day = visit_day()
    status, slots = octo.post("/octo/availability", {
        "productId": "SHOW-EVENING", "optionId": "DEFAULT", "localDate": day.isoformat()})
    assert status == 200
    assert [s["id"] for s in slots] == [availability_id(day, dt.time(19, 30)), availability_id(day, dt.time(21, 0))]
    assert all(s["localDateTimeStart"] == s["id"] for s in slots)


def test_vacancies_and_capacity_come_from_the_capacity_rows(octo, catalog):
    day = visit_day()
    Capacity.objects.create(item=catalog["SHOW-EVENING"], visit_date=day, visit_time=dt.time(19, 30),
                            capacity=200, sold=150)
    _, slots = octo.post("/octo/availability", {
        "productId": "SHOW-EVENING", "optionId": "DEFAULT", "availabilityIds": [availability_id(day, dt.time(19, 30))]})
    assert len(slots) == 1
    assert (slots[0]["vacancies"], slots[0]["capacity"], slots[0]["status"]) == (50, 200, "LIMITED")


def test_a_sold_out_slot_is_sold_out_and_not_available(octo, catalog):
    day = visit_day()
    Capacity.objects.create(item=catalog["SHOW-EVENING"], visit_date=day, visit_time=dt.time(21, 0),
                            capacity=200, sold=200)
    _, slots = octo.post("/octo/availability", {
        "productId": "SHOW-EVENING", "optionId": "DEFAULT", "localDateStart": day.isoformat(),
        "localDateEnd": day.isoformat()})
    late = next(s for s in slots if s["id"] == availability_id(day, dt.time(21, 0)))
    assert (late["status"], late["available"], late["vacancies"]) == ("SOLD_OUT", False, 0)


def test_the_calendar_sums_a_days_slots(octo, catalog):
    day = visit_day()
    Capacity.objects.create(item=catalog["SHOW-EVENING"], visit_date=day, visit_time=dt.time(21, 0),
                            capacity=200, sold=200)
    status, days = octo.post("/octo/availability/calendar", {
        "productId": "SHOW-EVENING", "optionId": "DEFAULT", "localDateStart": day.isoformat(),
        "localDateEnd": (day + dt.timedelta(days=1)).isoformat()})
    assert status == 200
    assert [(d["localDate"], d["vacancies"], d["capacity"]) for d in days] == [
        (day.isoformat(), 200, 400), ((day + dt.timedelta(days=1)).isoformat(), 400, 400)]


def test_an_opening_hours_product_has_one_availability_a_day(octo):
    day = visit_day()
    _, slots = octo.post("/octo/availability", {
        "productId": "DAY-ADULT", "optionId": "DEFAULT", "localDate": day.isoformat()})
    assert [(s["id"], s["allDay"], s["vacancies"]) for s in slots] == [(availability_id(day), True, 5000)]


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({"productId": "NOPE", "optionId": "DEFAULT", "localDate": "2030-01-01"}, "INVALID_PRODUCT_ID", "productId"),
        ({"productId": "DAY-ADULT", "optionId": "VIP", "localDate": "2030-01-01"}, "INVALID_OPTION_ID", "optionId"),
        ({"productId": "DAY-ADULT", "optionId": "DEFAULT", "availabilityIds": ["yesterday"]},
         "INVALID_AVAILABILITY_ID", "availabilityId"),
        ({"productId": "DAY-ADULT", "optionId": "DEFAULT", "localDate": "2030-01-01",
          "units": [{"id": "CHILD", "quantity": 1}]}, "INVALID_UNIT_ID", "unitId"),
        ({"productId": "DAY-ADULT", "optionId": "DEFAULT"}, "BAD_REQUEST", None),
        ({"productId": "DAY-ADULT", "optionId": "DEFAULT", "localDate": "01/01/2030"}, "BAD_REQUEST", None),
        ([1, 2], "BAD_REQUEST", None),
    ],
)
def test_availability_refuses_in_octos_words(octo, body, error, field):
    status, answer = octo.post("/octo/availability", body)
    assert status == 400
    assert answer["error"] == error
    if field:
        assert field in answer


def test_the_demo_catalog_offers_start_time_and_opening_hours_slots_in_the_next_30_days(octo):
    TimeSlot.objects.all().delete()
    text = (Path(__file__).resolve().parent.parent / "catalog" / "data" / "demo_catalog.json").read_text()
    load_catalog(text=text)
    _, products = octo.get("/octo/products")
    kinds: dict[str, list[str]] = {}
    for product in products:
        kinds.setdefault(product["availabilityType"], []).append(product["id"])
    start = visit_day(1)
    for kind in ("START_TIME", "OPENING_HOURS"):
        open_days = 0
        for product_id in kinds[kind]:
            _, days = octo.post("/octo/availability/calendar", {
                "productId": product_id, "optionId": "DEFAULT", "localDateStart": start.isoformat(),
                "localDateEnd": (start + dt.timedelta(days=29)).isoformat()})
            open_days += sum(1 for d in days if d["available"])
        assert open_days >= 30, kind


PRICING = {"HTTP_OCTO_CAPABILITIES": "octo/pricing"}


def test_with_octo_pricing_products_carry_unit_prices_in_minor_units(octo):
    status, product = octo.get("/octo/products/SHOW-EVENING", **PRICING)
    assert status == 200
    assert octo.last["Octo-Capabilities"] == "octo/pricing"
    assert product["pricingPer"] == "UNIT" and product["defaultCurrency"] == "EUR"
    assert product["options"][0]["units"][0]["pricingFrom"][0]["retail"] == 2000


def test_without_octo_pricing_nothing_is_priced(octo):
    _, product = octo.get("/octo/products/SHOW-EVENING")
    assert octo.last["Octo-Capabilities"] == ""
    assert "pricingPer" not in product and "pricingFrom" not in product["options"][0]["units"][0]


def test_with_octo_pricing_availability_carries_unit_pricing(octo):
    day = visit_day()
    _, slots = octo.post("/octo/availability", {
        "productId": "FAMILY-GROUP", "optionId": "DEFAULT", "localDate": day.isoformat()}, **PRICING)
    assert slots[0]["unitPricing"] == [{"unitId": "GROUP", "original": 15000, "retail": 15000, "net": None,
                                        "currency": "EUR", "currencyPrecision": 2, "includedTaxes": []}]
    _, days = octo.post("/octo/availability/calendar", {
        "productId": "FAMILY-GROUP", "optionId": "DEFAULT", "localDate": day.isoformat()}, **PRICING)
    assert days[0]["unitPricingFrom"][0]["retail"] == 15000


def test_the_capabilities_list_names_pricing(octo):
    status, capabilities = octo.get("/octo/capabilities")
    assert status == 200 and [c["id"] for c in capabilities] == ["octo/pricing"]
