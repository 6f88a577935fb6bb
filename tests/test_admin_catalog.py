"""The catalog admin goes through catalog.services under the catalog file's rules: a new
capacity is carried over to the capacity rows (never below sold), a package component is a
ticket, an item packages use stays a ticket; capacity rows are read-only and nothing is deleted."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from catalog.models import Capacity, Item, ItemType, PackageComponent, TimeSlot, Venue
from catalog.selectors import venue_today
from tests.factories import CapacityFactory, ItemFactory

pytestmark = pytest.mark.django_db


def change_url(item: Item) -> str:
    return reverse("admin:catalog_item_change", args=[item.pk])


def post_value(value: Any) -> str | None:
    """A form value as a browser would post it (None: not posted)."""
    if value is None or value is False:
        return None if value is False else ""
    if value is True:
        return "on"
    if isinstance(value, dt.time):
        return f"{value:%H:%M}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def page_data(response) -> dict[str, Any]:
    """What the change page posts back unchanged: the form, and each inline with its management form."""
    data: dict[str, Any] = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    for form in forms:
        for name in form.fields:
            value = post_value(form[name].value())
            if value is not None:
                data[form.add_prefix(name)] = value
    return data


def edit(admin_client, item: Item, **changes: Any):
    data = page_data(admin_client.get(change_url(item)))
    data.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        data.pop(key, None)
    return admin_client.post(change_url(item), data)


def errors(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return list(response.context["adminform"].form.non_field_errors())


def test_a_new_capacity_per_day_is_carried_over_to_the_rows_from_today_never_below_sold(admin_client, catalog):
    day = catalog["DAY-ADULT"]
    today = venue_today()
    past = CapacityFactory(item=day, visit_date=today - dt.timedelta(days=1), capacity=5000, sold=40)
    busy = CapacityFactory(item=day, visit_date=today + dt.timedelta(days=3), capacity=5000, sold=30)
    quiet = CapacityFactory(item=day, visit_date=today + dt.timedelta(days=4), capacity=5000, sold=0)

    response = edit(admin_client, day, capacity_per_day="10")

    assert response.status_code == 302
    assert Item.objects.get(pk=day.pk).capacity_per_day == 10
    assert [Capacity.objects.get(pk=r.pk).capacity for r in (past, busy, quiet)] == [5000, 30, 10]
    shown = [str(m) for m in admin_client.get(response.url).context["messages"]]
    assert any("30 already sold" in m for m in shown)


def test_a_new_slot_capacity_is_carried_over_to_that_slots_rows(admin_client, catalog):
    show = catalog["SHOW-EVENING"]
    row = CapacityFactory(item=show, visit_date=venue_today(), visit_time=dt.time(19, 30), capacity=200, sold=5)
    first = TimeSlot.objects.get(item=show, time=dt.time(19, 30))
    index = next(i for i, slot in enumerate(show.time_slots.order_by("id")) if slot.pk == first.pk)

    response = edit(admin_client, show, **{f"time_slots-{index}-capacity": "50"})

    assert response.status_code == 302
    assert TimeSlot.objects.get(pk=first.pk).capacity == 50
    assert Capacity.objects.get(pk=row.pk).capacity == 50


def test_a_package_component_that_is_itself_a_package_is_refused(admin_client, catalog):
    package = catalog["PARK-AND-SHOW"]
    other = ItemFactory(item_id="OTHER-PACKAGE", item_type=ItemType.PACKAGE)
    PackageComponent.objects.create(package=other, component=catalog["DAY-ADULT"])

    response = edit(admin_client, package, **{
        "components-TOTAL_FORMS": "3", "components-2-component": str(other.pk), "components-2-position": "2",
    })

    assert any("OTHER-PACKAGE is a package; a package component must be a ticket" in e for e in errors(response))
    assert list(package.components.values_list("component__item_id", flat=True)) == ["DAY-ADULT", "SHOW-EVENING"]


def test_a_ticket_that_a_package_uses_cannot_become_a_package(admin_client, catalog):
    day = catalog["DAY-ADULT"]

    response = edit(admin_client, day, item_type=ItemType.PACKAGE)

    assert errors(response)
    assert Item.objects.get(pk=day.pk).item_type == ItemType.TICKET


def test_capacity_on_a_package_and_a_group_size_on_a_ticket_are_refused(admin_client, catalog):
    assert errors(edit(admin_client, catalog["PARK-AND-SHOW"], capacity_per_day="10"))
    assert errors(edit(admin_client, catalog["DAY-ADULT"], max_group_size="4"))
    assert Item.objects.get(pk=catalog["PARK-AND-SHOW"].pk).capacity_per_day is None
    assert Item.objects.get(pk=catalog["DAY-ADULT"].pk).max_group_size is None


def test_editing_an_item_keeps_its_components_slots_and_coupons(admin_client, catalog):
    package = catalog["PARK-AND-SHOW"]
    response = edit(admin_client, package, name="Park and show deluxe", price="70.00")
    assert response.status_code == 302
    package.refresh_from_db()
    assert (package.name, package.price) == ("Park and show deluxe", Decimal("70.00"))
    assert list(package.components.values_list("component__item_id", flat=True)) == ["DAY-ADULT", "SHOW-EVENING"]
    assert list(package.coupons.values_list("code", flat=True)) == ["FNB10"]


def test_staff_add_a_ticket_but_not_a_package_without_components(admin_client, catalog):
    add = reverse("admin:catalog_item_add")
    page = page_data(admin_client.get(add))
    ticket = {**page, "item_id": "KIDS", "name": "Kids", "item_type": "ticket", "price": "10.00", "active": "on",
              "capacity_per_day": "100"}
    assert admin_client.post(add, ticket).status_code == 302
    assert Item.objects.get(item_id="KIDS").capacity_per_day == 100

    package = {**page, "item_id": "EMPTY", "name": "Empty", "item_type": "package", "price": "1.00", "active": "on"}
    response = admin_client.post(add, package)
    assert any("a package needs at least one component" in e for e in errors(response))
    assert not Item.objects.filter(item_id="EMPTY").exists()


def test_items_are_never_deleted_in_the_admin(admin_client, catalog):
    item = catalog["DAY-ADULT"]
    response = admin_client.post(reverse("admin:catalog_item_delete", args=[item.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Item.objects.filter(pk=item.pk).exists()


def test_capacity_rows_cannot_be_edited_in_the_admin(admin_client, catalog):
    row = CapacityFactory(item=catalog["DAY-ADULT"], visit_date=venue_today(), capacity=100, sold=60)
    url = reverse("admin:catalog_capacity_change", args=[row.pk])
    admin_client.post(url, {"item": row.item_id, "visit_date": row.visit_date.isoformat(), "capacity": "10",
                            "sold": "60"})
    assert Capacity.objects.get(pk=row.pk).capacity == 100
    assert admin_client.post(reverse("admin:catalog_capacity_delete", args=[row.pk]), {"post": "yes"}).status_code \
        == 403


def test_the_venue_is_changed_under_the_catalog_files_rules(admin_client, catalog):
    venue = Venue.objects.get()
    url = reverse("admin:catalog_venue_change", args=[venue.pk])
    refused = admin_client.post(url, {"name": venue.name, "time_zone": "Mars/Olympus", "currency": "EUR"})
    assert any("IANA time zone" in e for e in errors(refused))
    assert Venue.objects.get().time_zone == venue.time_zone

    changed = admin_client.post(url, {"name": "Harbour Park", "time_zone": "Europe/Lisbon", "currency": "EUR"})
    assert changed.status_code == 302
    assert Venue.objects.get().time_zone == "Europe/Lisbon"
    assert admin_client.get(reverse("admin:catalog_venue_add")).status_code == 403  # one venue
