"""load_catalog: the whole file is checked first, then applied in one transaction; twice is once."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.loading import load_catalog
from catalog.models import (
    Capacity,
    Item,
    ItemType,
    PackageComponent,
    PackageCoupon,
    TimeSlot,
    Venue,
)
from catalog.selectors import VenueInfo, clear_venue_cache, get_venue, items_by_code, venue_today
from catalog.specs import CatalogInvalid
from tests.factories import CapacityFactory, ItemFactory, PackageComponentFactory, VenueFactory

pytestmark = pytest.mark.django_db

DEMO_FILE = Path(__file__).resolve().parent.parent / "catalog" / "data" / "demo_catalog.json"

# The contract's example (API.md, "Catalog file").
CONTRACT = {
    "venue": {"name": "Harbour Park", "timeZone": "Europe/Amsterdam", "currency": "EUR"},
    "items": [
        {
            "itemId": "DAY-ADULT",
            "name": "Day ticket, adult",
            "type": "ticket",
            "price": "49.50",
            "saleFrom": "2026-01-01",
            "saleUntil": "2027-12-31",
            "capacityPerDay": 5000,
        },
        {
            "itemId": "FAMILY-GROUP",
            "name": "Family group",
            "type": "group_ticket",
            "price": "150.00",
            "maxGroupSize": 6,
        },
        {
            "itemId": "SHOW-EVENING",
            "name": "Evening show",
            "type": "ticket",
            "price": "20.00",
            "timeSlots": [{"time": "19:30", "capacity": 200}, {"time": "21:00", "capacity": 200}],
        },
        {
            "itemId": "PARK-AND-SHOW",
            "name": "Park and show",
            "type": "package",
            "price": "65.00",
            "components": [{"itemId": "DAY-ADULT"}, {"itemId": "SHOW-EVENING"}],
            "coupons": [{"code": "FNB10", "description": "10% off food and drinks", "validDays": 1}],
        },
    ],
}
ADULT, FAMILY, SHOW, PACKAGE = range(4)


@pytest.fixture(autouse=True)
def _fresh_venue_cache():
    clear_venue_cache()
    yield
    clear_venue_cache()


def doc() -> dict:
    return copy.deepcopy(CONTRACT)


def load(data, **kwargs):
    text = data if isinstance(data, str | bytes) else json.dumps(data)
    return load_catalog(text=text, **kwargs)


def problems_of(data) -> list[str]:
    with pytest.raises(CatalogInvalid) as exc_info:
        load(data)
    return exc_info.value.problems


def snapshot() -> dict:
    """Every catalog row with every column, updated_at included."""
    return {
        model.__name__: sorted(model.objects.values_list(), key=lambda row: row[0])
        for model in (Venue, Item, TimeSlot, PackageComponent, PackageCoupon, Capacity)
    }


# ---------------------------------------------------------------------------------------------
# Validation: every rule reports its JSON path
# ---------------------------------------------------------------------------------------------


def _set(path: tuple, value):
    """A mutation that sets doc[path...] = value (appends at a list's end; DELETE deletes)."""

    def mutate(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        elif isinstance(target, list) and path[-1] == len(target):
            target.append(value)
        else:
            target[path[-1]] = value
        return d

    return mutate


DELETE = object()
I = "items"  # noqa: E741 - short for the table below

RULES = [
    # venue
    ("venue-not-object", _set(("venue",), "Harbour"), "venue: must be an object"),
    ("venue-unknown-field", _set(("venue", "city"), "X"), "venue.city: unknown field"),
    ("venue-name-missing", _set(("venue", "name"), DELETE), "venue.name: is required"),
    ("venue-name-blank", _set(("venue", "name"), " "), "venue.name: must be 1-200 characters"),
    ("tz-unknown", _set(("venue", "timeZone"), "Mars/Olympus"), "venue.timeZone: must be an IANA"),
    ("tz-not-string", _set(("venue", "timeZone"), 1), "venue.timeZone: must be a string"),
    ("tz-missing", _set(("venue", "timeZone"), DELETE), "venue.timeZone: is required"),
    ("currency-lower", _set(("venue", "currency"), "eur"), "venue.currency: must be an ISO 4217"),
    ("currency-long", _set(("venue", "currency"), "EURO"), "venue.currency: must be an ISO 4217"),
    ("currency-missing", _set(("venue", "currency"), DELETE), "venue.currency: is required"),
    # root and items
    ("items-missing", _set(("items",), DELETE), "items: is required"),
    ("items-not-list", _set(("items",), {}), "items: must be a list"),
    ("root-unknown", _set(("extra",), 1), "extra: unknown field"),
    ("item-not-object", _set((I, 1), "FAMILY-GROUP"), "items[1]: must be an object"),
    ("item-unknown", _set((I, 1, "colour"), "red"), "items[1].colour: unknown field"),
    ("id-missing", _set((I, 1, "itemId"), DELETE), "items[1].itemId: is required"),
    ("id-empty", _set((I, 1, "itemId"), ""), "items[1].itemId: must be 1-64 characters"),
    ("id-too-long", _set((I, 1, "itemId"), "X" * 65), "items[1].itemId: must be 1-64 characters"),
    ("id-number", _set((I, 1, "itemId"), 7), "items[1].itemId: must be a string"),
    (
        "id-twice",
        _set((I, 1, "itemId"), "DAY-ADULT"),
        "items[1].itemId: DAY-ADULT is already defined at items[0]",
    ),
    ("name-missing", _set((I, 1, "name"), DELETE), "items[1].name: is required"),
    ("name-too-long", _set((I, 1, "name"), "n" * 201), "items[1].name: must be 1-200 characters"),
    ("type-missing", _set((I, 1, "type"), DELETE), "items[1].type: is required"),
    (
        "type-unknown",
        _set((I, 1, "type"), "voucher"),
        "items[1].type: must be one of ticket, group_ticket, package",
    ),
    # price
    ("price-missing", _set((I, 0, "price"), DELETE), "items[0].price: is required"),
    ("price-text", _set((I, 0, "price"), "cheap"), "items[0].price: must be a decimal string"),
    ("price-negative", _set((I, 0, "price"), "-1.00"), "items[0].price: must be from 0"),
    (
        "price-3-places",
        _set((I, 0, "price"), "49.505"),
        "items[0].price: must have at most 2 decimal places",
    ),
    ("price-bool", _set((I, 0, "price"), True), "items[0].price: must be a decimal string"),
    ("price-nan", _set((I, 0, "price"), "NaN"), "items[0].price: must be a decimal string"),
    ("price-huge", _set((I, 0, "price"), "1e20"), "items[0].price: must be from 0"),
    # active, dates
    ("active-text", _set((I, 0, "active"), "yes"), "items[0].active: must be true or false"),
    (
        "date-format",
        _set((I, 0, "saleFrom"), "2026-1-1"),
        "items[0].saleFrom: must be a date YYYY-MM-DD",
    ),
    (
        "date-invalid",
        _set((I, 0, "saleUntil"), "2027-02-30"),
        "items[0].saleUntil: must be a date YYYY-MM-DD",
    ),
    (
        "date-number",
        _set((I, 0, "saleFrom"), 20260101),
        "items[0].saleFrom: must be a date YYYY-MM-DD",
    ),
    (
        "window-reversed",
        _set((I, 0, "saleFrom"), "2028-01-01"),
        "items[0].saleUntil: must not be before saleFrom",
    ),
    # capacityPerDay
    (
        "cap-negative",
        _set((I, 0, "capacityPerDay"), -1),
        "items[0].capacityPerDay: must be an integer",
    ),
    (
        "cap-text",
        _set((I, 0, "capacityPerDay"), "5000"),
        "items[0].capacityPerDay: must be an integer",
    ),
    (
        "cap-fraction",
        _set((I, 0, "capacityPerDay"), 1.5),
        "items[0].capacityPerDay: must be an integer",
    ),
    (
        "cap-bool",
        _set((I, 0, "capacityPerDay"), True),
        "items[0].capacityPerDay: must be an integer",
    ),
    (
        "cap-with-slots",
        _set((I, SHOW, "capacityPerDay"), 100),
        "items[2].capacityPerDay: not allowed together with timeSlots",
    ),
    (
        "cap-on-package",
        _set((I, PACKAGE, "capacityPerDay"), 100),
        "items[3].capacityPerDay: not for packages",
    ),
    # timeSlots
    ("slots-not-list", _set((I, SHOW, "timeSlots"), "19:30"), "items[2].timeSlots: must be a list"),
    ("slots-empty", _set((I, SHOW, "timeSlots"), []), "items[2].timeSlots: must list at least one"),
    (
        "slot-not-object",
        _set((I, SHOW, "timeSlots", 0), "19:30"),
        "items[2].timeSlots[0]: must be an object",
    ),
    (
        "slot-time-missing",
        _set((I, SHOW, "timeSlots", 1, "time"), DELETE),
        "items[2].timeSlots[1].time: is required",
    ),
    (
        "slot-time-short",
        _set((I, SHOW, "timeSlots", 0, "time"), "7:30"),
        "items[2].timeSlots[0].time: must be HH:MM",
    ),
    (
        "slot-time-24",
        _set((I, SHOW, "timeSlots", 0, "time"), "24:00"),
        "items[2].timeSlots[0].time: must be HH:MM",
    ),
    (
        "slot-time-seconds",
        _set((I, SHOW, "timeSlots", 0, "time"), "19:30:00"),
        "items[2].timeSlots[0].time: must be HH:MM",
    ),
    (
        "slot-time-twice",
        _set((I, SHOW, "timeSlots", 1, "time"), "19:30"),
        "items[2].timeSlots[1].time: 19:30 is listed more than once",
    ),
    (
        "slot-cap-negative",
        _set((I, SHOW, "timeSlots", 1, "capacity"), -5),
        "items[2].timeSlots[1].capacity: must be an integer",
    ),
    (
        "slot-unknown",
        _set((I, SHOW, "timeSlots", 1, "seats"), 5),
        "items[2].timeSlots[1].seats: unknown field",
    ),
    (
        "slots-on-package",
        _set((I, PACKAGE, "timeSlots"), [{"time": "10:00"}]),
        "items[3].timeSlots: not for packages",
    ),
    # maxGroupSize
    (
        "group-size-on-ticket",
        _set((I, ADULT, "maxGroupSize"), 4),
        "items[0].maxGroupSize: only for items of type group_ticket",
    ),
    (
        "group-size-zero",
        _set((I, FAMILY, "maxGroupSize"), 0),
        "items[1].maxGroupSize: must be an integer from 1",
    ),
    # components
    (
        "components-on-ticket",
        _set((I, ADULT, "components"), [{"itemId": "SHOW-EVENING"}]),
        "items[0].components: only for items of type package",
    ),
    (
        "package-no-components",
        _set((I, PACKAGE, "components"), DELETE),
        "items[3].components: a package needs at least one component",
    ),
    (
        "package-empty-components",
        _set((I, PACKAGE, "components"), []),
        "items[3].components: a package needs at least one component",
    ),
    (
        "components-not-list",
        _set((I, PACKAGE, "components"), "DAY-ADULT"),
        "items[3].components: must be a list",
    ),
    (
        "component-unknown",
        _set((I, PACKAGE, "components", 1, "itemId"), "NOPE"),
        "items[3].components[1].itemId: NOPE is neither in this file nor in the catalog",
    ),
    (
        "component-group",
        _set((I, PACKAGE, "components", 1, "itemId"), "FAMILY-GROUP"),
        "items[3].components[1].itemId: FAMILY-GROUP is a group_ticket; a package component",
    ),
    (
        "component-itself",
        _set((I, PACKAGE, "components", 1, "itemId"), "PARK-AND-SHOW"),
        "items[3].components[1].itemId: PARK-AND-SHOW is a package; a package component",
    ),
    (
        "component-twice",
        _set((I, PACKAGE, "components", 1, "itemId"), "DAY-ADULT"),
        "items[3].components[1].itemId: DAY-ADULT is already a component of this package",
    ),
    (
        "component-missing-id",
        _set((I, PACKAGE, "components", 0), {}),
        "items[3].components[0].itemId: is required",
    ),
    # coupons
    (
        "coupons-on-ticket",
        _set((I, ADULT, "coupons"), [{"code": "X", "description": "x", "validDays": 1}]),
        "items[0].coupons: only for items of type package",
    ),
    (
        "coupon-code-missing",
        _set((I, PACKAGE, "coupons", 0, "code"), DELETE),
        "items[3].coupons[0].code: is required",
    ),
    (
        "coupon-description-missing",
        _set((I, PACKAGE, "coupons", 0, "description"), DELETE),
        "items[3].coupons[0].description: is required",
    ),
    (
        "coupon-days-missing",
        _set((I, PACKAGE, "coupons", 0, "validDays"), DELETE),
        "items[3].coupons[0].validDays: is required",
    ),
    (
        "coupon-days-zero",
        _set((I, PACKAGE, "coupons", 0, "validDays"), 0),
        "items[3].coupons[0].validDays: must be an integer from 1",
    ),
    (
        "coupon-code-twice",
        _set((I, PACKAGE, "coupons", 1), {"code": "FNB10", "description": "again", "validDays": 2}),
        "items[3].coupons[1].code: FNB10 is listed more than once",
    ),
    (
        "coupons-not-list",
        _set((I, PACKAGE, "coupons"), {"code": "FNB10"}),
        "items[3].coupons: must be a list",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_rule_reports_its_json_path(mutate, expected):
    problems = problems_of(mutate(doc()))

    assert any(p.startswith(expected) for p in problems), problems


def test_the_contract_example_is_valid():
    result = load(doc())

    assert (result.created, result.updated, result.unchanged) == (4, 0, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "$: not valid JSON (line 1, column 2)"),
        ("[]", "$: must be an object"),
        ('{"items": [], "items": []}', "items: appears more than once"),
        ('{"items": [{"itemId": "A", "price": NaN}]}', "$: not valid JSON"),
        (b"\xff\xfe\x00", "$: not valid JSON"),
    ],
)
def test_malformed_files_are_reported(text, expected):
    problems = problems_of(text)

    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    d = doc()
    d["venue"]["currency"] = "euro"
    d["items"][0]["price"] = "-3"
    d["items"][2]["timeSlots"][0]["time"] = "7pm"
    d["items"][3]["components"].append({"itemId": "GHOST"})

    problems = problems_of(d)

    assert problems == [
        "venue.currency: must be an ISO 4217 code of 3 capital letters, such as EUR",
        "items[0].price: must be from 0 to 9999999999.99",
        "items[2].timeSlots[0].time: must be HH:MM",
        "items[3].components[2].itemId: GHOST is neither in this file nor in the catalog",
    ]


def test_prices_may_be_json_numbers_or_strings_with_fewer_places():
    d = doc()
    d["items"][0]["price"] = 49.5
    d["items"][1]["price"] = 150
    d["items"][2]["price"] = "20"

    load(d)

    prices = dict(Item.objects.values_list("item_id", "price"))
    assert prices["DAY-ADULT"] == Decimal("49.50")
    assert prices["FAMILY-GROUP"] == Decimal("150.00")
    assert prices["SHOW-EVENING"] == Decimal("20.00")


def test_a_component_may_be_an_item_already_in_the_catalog():
    ItemFactory(item_id="MUSEUM", item_type=ItemType.TICKET)
    d = doc()
    d["items"][PACKAGE]["components"].append({"itemId": "MUSEUM"})

    load(d)

    package = Item.objects.get(item_id="PARK-AND-SHOW")
    assert [c.component.item_id for c in package.components.order_by("position")] == [
        "DAY-ADULT", "SHOW-EVENING", "MUSEUM",
    ]  # fmt: skip


def test_a_component_in_the_catalog_must_be_a_ticket():
    ItemFactory(item_id="BUS-GROUP", item_type=ItemType.GROUP_TICKET)
    d = doc()
    d["items"][PACKAGE]["components"].append({"itemId": "BUS-GROUP"})

    assert problems_of(d) == [
        "items[3].components[2].itemId: BUS-GROUP is a group_ticket; a package component must be a ticket"
    ]


def test_the_files_type_wins_over_the_catalogs_for_a_component():
    ItemFactory(item_id="DAY-ADULT", item_type=ItemType.GROUP_TICKET)  # the file makes it a ticket

    load(doc())

    assert Item.objects.get(item_id="DAY-ADULT").item_type == ItemType.TICKET


def test_a_component_of_a_package_outside_the_file_must_stay_a_ticket():
    PackageComponentFactory(
        package=ItemFactory(item_id="OLD-PACKAGE", item_type=ItemType.PACKAGE),
        component=ItemFactory(item_id="DAY-ADULT", item_type=ItemType.TICKET),
    )
    d = doc()
    d["items"][ADULT]["type"] = "group_ticket"
    del d["items"][PACKAGE]  # would also complain about its component

    assert problems_of(d) == ["items[0].type: must stay ticket: DAY-ADULT is a component of package OLD-PACKAGE"]


def test_venue_is_optional_and_then_left_as_it_is():
    VenueFactory(name="Old Name")
    d = doc()
    del d["venue"]

    result = load(d)

    assert result.venue == "absent"
    assert Venue.objects.get().name == "Old Name"


# ---------------------------------------------------------------------------------------------
# An invalid file changes nothing
# ---------------------------------------------------------------------------------------------


def test_an_invalid_file_changes_nothing():
    load(doc())
    before = snapshot()
    d = doc()
    d["venue"]["name"] = "New name"
    d["items"][0]["price"] = "55.00"
    d["items"].append({"itemId": "NEW", "name": "New", "type": "ticket", "price": "1.00"})
    d["items"][2]["timeSlots"].append({"time": "25:00"})

    with pytest.raises(CatalogInvalid):
        load(d)

    assert snapshot() == before


def test_an_invalid_file_on_an_empty_catalog_creates_nothing():
    d = doc()
    d["items"][3]["coupons"][0]["validDays"] = 0

    with pytest.raises(CatalogInvalid):
        load(d)

    assert all(rows == [] for rows in snapshot().values())


# ---------------------------------------------------------------------------------------------
# Applying: create, update, twice is once
# ---------------------------------------------------------------------------------------------


def test_loading_creates_the_catalog_as_the_file_says():
    result = load(doc())

    assert result.venue == "created"
    venue = Venue.objects.get()
    assert (venue.name, venue.time_zone, venue.currency) == (
        "Harbour Park",
        "Europe/Amsterdam",
        "EUR",
    )
    adult = Item.objects.get(item_id="DAY-ADULT")
    assert (adult.item_type, adult.price, adult.capacity_per_day) == (
        "ticket",
        Decimal("49.50"),
        5000,
    )
    assert (adult.sale_from, adult.sale_until) == (dt.date(2026, 1, 1), dt.date(2027, 12, 31))
    assert adult.active is True
    family = Item.objects.get(item_id="FAMILY-GROUP")
    assert (family.item_type, family.max_group_size, family.capacity_per_day) == (
        "group_ticket",
        6,
        None,
    )
    show = Item.objects.get(item_id="SHOW-EVENING")
    assert list(show.time_slots.values_list("time", "capacity")) == [
        (dt.time(19, 30), 200), (dt.time(21, 0), 200),
    ]  # fmt: skip
    package = Item.objects.get(item_id="PARK-AND-SHOW")
    assert list(package.components.values_list("component__item_id", "position")) == [
        ("DAY-ADULT", 0), ("SHOW-EVENING", 1),
    ]  # fmt: skip
    assert list(package.coupons.values_list("code", "description", "valid_days")) == [
        ("FNB10", "10% off food and drinks", 1)
    ]


def test_loading_twice_changes_nothing():
    load(doc())
    before = snapshot()

    with CaptureQueriesContext(connection) as queries:
        result = load(doc())

    assert (result.venue, result.created, result.updated, result.unchanged) == (
        "unchanged",
        0,
        0,
        4,
    )
    assert snapshot() == before
    writes = [
        q["sql"] for q in queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]  # fmt: skip
    assert writes == []


def test_the_demo_fixture_loads_and_reloads_without_changes():
    first = load(DEMO_FILE.read_bytes())
    before = snapshot()
    second = load(DEMO_FILE.read_bytes())

    assert first.created == second.unchanged == Item.objects.count() >= 6
    assert second.created == second.updated == 0
    assert snapshot() == before
    contract_codes = {"DAY-ADULT", "FAMILY-GROUP", "SHOW-EVENING", "PARK-AND-SHOW"}
    assert contract_codes <= set(Item.objects.values_list("item_id", flat=True))
    assert Item.objects.filter(active=False).exists()


def test_the_demo_fixture_holds_the_contract_example_unchanged():
    demo = json.loads(DEMO_FILE.read_text())
    by_id = {item["itemId"]: item for item in demo["items"]}

    assert demo["venue"] == CONTRACT["venue"]
    for item in CONTRACT["items"]:
        assert by_id[item["itemId"]] == item


def test_a_changed_field_updates_only_that_item():
    load(doc())
    before = dict(Item.objects.values_list("item_id", "updated_at"))
    d = doc()
    d["items"][FAMILY]["price"] = "160.00"

    result = load(d)

    assert (result.created, result.updated, result.unchanged) == (0, 1, 3)
    after = dict(Item.objects.values_list("item_id", "updated_at"))
    assert after["FAMILY-GROUP"] > before["FAMILY-GROUP"]
    assert {k: v for k, v in after.items() if k != "FAMILY-GROUP"} == {
        k: v for k, v in before.items() if k != "FAMILY-GROUP"
    }
    assert Item.objects.get(item_id="FAMILY-GROUP").price == Decimal("160.00")


def test_leaving_out_an_optional_field_clears_it():
    load(doc())
    d = doc()
    del d["items"][ADULT]["saleFrom"]
    del d["items"][ADULT]["capacityPerDay"]
    d["items"][ADULT]["active"] = False

    load(d)

    adult = Item.objects.get(item_id="DAY-ADULT")
    assert (adult.sale_from, adult.capacity_per_day, adult.active) == (None, None, False)


def test_items_not_in_the_file_are_left_as_they_are():
    other = ItemFactory(item_id="LEGACY", price=Decimal("5.00"))
    load(doc())

    assert Item.objects.get(item_id="LEGACY").updated_at == other.updated_at
    assert Item.objects.count() == 5


def test_slots_components_and_coupons_are_made_to_match_the_file():
    load(doc())
    d = doc()
    d["items"][SHOW]["timeSlots"] = [{"time": "21:00", "capacity": 200}, {"time": "22:30"}]
    d["items"][PACKAGE]["components"] = [{"itemId": "SHOW-EVENING"}, {"itemId": "DAY-ADULT"}]
    d["items"][PACKAGE]["coupons"] = [
        {"code": "DRINK", "description": "A free drink", "validDays": 2},
        {"code": "FNB10", "description": "10% off food and drinks", "validDays": 1},
    ]
    kept_slot = TimeSlot.objects.get(item__item_id="SHOW-EVENING", time=dt.time(21, 0))

    result = load(d)

    assert (result.updated, result.unchanged) == (2, 2)
    show = Item.objects.get(item_id="SHOW-EVENING")
    assert list(show.time_slots.values_list("time", "capacity")) == [
        (dt.time(21, 0), 200), (dt.time(22, 30), None),
    ]  # fmt: skip
    assert show.time_slots.get(time=dt.time(21, 0)).pk == kept_slot.pk
    package = Item.objects.get(item_id="PARK-AND-SHOW")
    components = package.components.order_by("position").values_list("component__item_id", flat=True)
    assert list(components) == ["SHOW-EVENING", "DAY-ADULT"]
    assert list(package.coupons.order_by("position").values_list("code", "valid_days")) == [
        ("DRINK", 2), ("FNB10", 1),
    ]  # fmt: skip
    assert load(d).unchanged == 4


def test_a_child_change_moves_the_items_updated_at():
    load(doc())
    before = Item.objects.get(item_id="PARK-AND-SHOW").updated_at
    d = doc()
    d["items"][PACKAGE]["coupons"][0]["validDays"] = 3

    load(d)

    assert Item.objects.get(item_id="PARK-AND-SHOW").updated_at > before


def test_an_item_can_change_type_and_lose_what_no_longer_fits():
    load(doc())
    d = doc()
    d["items"][PACKAGE] = {"itemId": "PARK-AND-SHOW", "name": "Park and show", "type": "ticket",
                           "price": "65.00"}  # fmt: skip

    load(d)

    package = Item.objects.get(item_id="PARK-AND-SHOW")
    assert package.item_type == ItemType.TICKET
    assert not package.components.exists()
    assert not package.coupons.exists()


def test_the_venue_is_updated_in_place_and_seen_at_once():
    VenueFactory(name="Old", time_zone="Europe/London", currency="GBP")
    assert get_venue().currency == "GBP"

    result = load(doc())

    assert result.venue == "updated"
    assert Venue.objects.count() == 1
    assert get_venue().name == "Harbour Park"
    assert get_venue().currency == "EUR"


def test_a_dry_run_saves_nothing():
    result = load(doc(), dry_run=True)

    assert (result.created, result.dry_run) == (4, True)
    assert all(rows == [] for rows in snapshot().values())


# ---------------------------------------------------------------------------------------------
# Capacity changes reach the existing capacity rows from today on
# ---------------------------------------------------------------------------------------------


def test_a_new_capacity_per_day_reaches_rows_from_today_on():
    load(doc())
    adult = Item.objects.get(item_id="DAY-ADULT")
    today = venue_today()
    past = CapacityFactory(item=adult, visit_date=today - dt.timedelta(days=1), capacity=5000, sold=10)
    current = CapacityFactory(item=adult, visit_date=today, capacity=5000, sold=10)
    later = CapacityFactory(item=adult, visit_date=today + dt.timedelta(days=30), capacity=5000, sold=0)
    d = doc()
    d["items"][ADULT]["capacityPerDay"] = 3000

    result = load(d)

    past.refresh_from_db()
    current.refresh_from_db()
    later.refresh_from_db()
    assert (past.capacity, current.capacity, later.capacity) == (5000, 3000, 3000)
    assert result.capacity_rows_updated == 2
    assert result.warnings == []


def test_a_capacity_below_what_is_sold_stops_at_sold_with_a_warning():
    load(doc())
    adult = Item.objects.get(item_id="DAY-ADULT")
    day = venue_today() + dt.timedelta(days=3)
    row = CapacityFactory(item=adult, visit_date=day, capacity=5000, sold=4000)
    d = doc()
    d["items"][ADULT]["capacityPerDay"] = 3000

    result = load(d)

    row.refresh_from_db()
    assert (row.capacity, row.sold) == (4000, 4000)
    assert result.warnings == [
        f"DAY-ADULT on {day.isoformat()}: 4000 already sold, more than the new capacity 3000; "
        "its capacity is set to 4000"
    ]


def test_removing_the_capacity_per_day_makes_rows_freesale():
    load(doc())
    row = CapacityFactory(item=Item.objects.get(item_id="DAY-ADULT"), visit_date=venue_today(), sold=7)
    d = doc()
    del d["items"][ADULT]["capacityPerDay"]

    load(d)

    row.refresh_from_db()
    assert (row.capacity, row.sold) == (None, 7)


def test_a_new_slot_capacity_reaches_that_slots_rows_only():
    load(doc())
    show = Item.objects.get(item_id="SHOW-EVENING")
    day = venue_today() + dt.timedelta(days=1)
    early = CapacityFactory(item=show, visit_date=day, visit_time=dt.time(19, 30), capacity=200, sold=5)
    late = CapacityFactory(item=show, visit_date=day, visit_time=dt.time(21, 0), capacity=200, sold=5)
    d = doc()
    d["items"][SHOW]["timeSlots"][1]["capacity"] = 120

    result = load(d)

    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.capacity, late.capacity) == (200, 120)
    assert result.capacity_rows_updated == 1


def test_rows_already_at_the_new_capacity_are_not_touched():
    load(doc())
    adult = Item.objects.get(item_id="DAY-ADULT")
    row = CapacityFactory(item=adult, visit_date=venue_today(), capacity=3000, sold=0)
    d = doc()
    d["items"][ADULT]["capacityPerDay"] = 3000

    result = load(d)

    assert result.capacity_rows_updated == 0
    assert Capacity.objects.get(pk=row.pk).updated_at == row.updated_at


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def test_the_command_prints_a_one_line_summary(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(doc()))
    out = StringIO()

    call_command("load_catalog", str(path), stdout=out)
    call_command("load_catalog", str(path), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines == [
        "Catalog loaded: venue created; items 4 created, 0 updated, 0 unchanged; 0 capacity rows updated.",
        "Catalog loaded: venue unchanged; items 0 created, 0 updated, 4 unchanged; 0 capacity rows updated.",
    ]


def test_the_command_lists_every_problem_and_changes_nothing(tmp_path):
    d = doc()
    d["items"][0]["price"] = "x"
    d["items"][2]["timeSlots"][0]["time"] = "7:30"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(d))

    with pytest.raises(CommandError) as exc_info:
        call_command("load_catalog", str(path))

    message = str(exc_info.value)
    assert "2 problem(s), nothing was changed" in message
    assert "items[0].price: must be a decimal string" in message
    assert "items[2].timeSlots[0].time: must be HH:MM" in message
    assert not Item.objects.exists()


def test_the_command_prints_capacity_warnings(tmp_path):
    load(doc())
    CapacityFactory(item=Item.objects.get(item_id="DAY-ADULT"), visit_date=venue_today(), sold=4000,
                    capacity=5000)  # fmt: skip
    d = doc()
    d["items"][ADULT]["capacityPerDay"] = 10
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(d))
    out, err = StringIO(), StringIO()

    call_command("load_catalog", str(path), stdout=out, stderr=err)

    assert "4000 already sold" in err.getvalue()
    assert "1 warning(s)" in out.getvalue()


def test_the_command_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("load_catalog", str(tmp_path / "nope.json"))


# ---------------------------------------------------------------------------------------------
# Reading what was loaded (catalog.selectors)
# ---------------------------------------------------------------------------------------------


def test_items_by_code_reads_everything_issuance_needs_in_four_queries(django_assert_num_queries):
    load(doc())

    with django_assert_num_queries(4):
        items = items_by_code(["PARK-AND-SHOW", "SHOW-EVENING", "FAMILY-GROUP", "NOPE"])
        package = items["PARK-AND-SHOW"]
        components = [pc.component for pc in package.components.all()]
        component_slots = [[s.time for s in c.time_slots.all()] for c in components]
        coupons = [c.code for c in package.coupons.all()]
        show_slots = [s.time for s in items["SHOW-EVENING"].time_slots.all()]

    assert set(items) == {"PARK-AND-SHOW", "SHOW-EVENING", "FAMILY-GROUP"}
    assert [c.item_id for c in components] == ["DAY-ADULT", "SHOW-EVENING"]
    assert component_slots == [[], [dt.time(19, 30), dt.time(21, 0)]]
    assert coupons == ["FNB10"]
    assert show_slots == [dt.time(19, 30), dt.time(21, 0)]


def test_items_by_code_of_nothing_asks_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert items_by_code([]) == {}


def test_without_a_venue_row_the_settings_time_zone_is_used(settings):
    settings.VENUE_TIME_ZONE = "Pacific/Auckland"

    assert get_venue() == VenueInfo(name="Venue", time_zone="Pacific/Auckland", currency="EUR")


def test_the_venue_is_cached_for_a_few_seconds(django_assert_num_queries):
    VenueFactory()
    get_venue()

    with django_assert_num_queries(0):
        assert get_venue().name == "Harbour Park"
    Venue.objects.update(name="Renamed")  # no signal: as if another process changed it
    assert get_venue().name == "Harbour Park"
    clear_venue_cache()
    assert get_venue().name == "Renamed"


def test_venue_today_is_the_date_in_the_venues_time_zone():
    VenueFactory(time_zone="Pacific/Kiritimati")  # UTC+14

    expected = timezone.now().astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    assert venue_today() == expected
