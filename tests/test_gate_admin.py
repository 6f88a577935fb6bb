"""The gate in the staff admin: the Gate group (devices, the scan log with its attendance page,
the scanner page, nothing else), the scan log's search and filters, attendance (admitted against
sold per date and slot), and the order page showing which assets were used, when and by which
device, in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from channel_manager.orders.models import Order
from tests.factories import staff_user
from tests.payloads import contract_example_body
from tests.test_gate import DAY, NOON, assets_of, place, ticket
from wallets.admin import attendance
from wallets.gate.devices import create_gate_device
from wallets.gate.services import scan_code
from wallets.models import GateDevice, GateScan

pytestmark = pytest.mark.django_db

SCANS = reverse("admin:wallets_gatescan_changelist")
ATTENDANCE = reverse("admin:wallets_gatescan_attendance")
DEVICES = reverse("admin:wallets_gatedevice_changelist")


def logged_in(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def gate_staff(db) -> Client:
    return logged_in(staff_user("gina", "Gate"))


@pytest.fixture
def device(catalog) -> GateDevice:
    return create_gate_device(name="North entrance 1")[0]


@pytest.fixture
def order(client, catalog) -> Order:
    """The contract's example order, Issued, its visit day moved to DAY."""
    placed = place(client, contract_example_body())
    assets_of(placed).update(visit_date=DAY)
    return placed


# ---- the Gate group -------------------------------------------------------------------------


def test_the_gate_group_has_only_the_devices_the_scan_log_and_the_scanner(db):
    granted = {f"{p.content_type.app_label}.{p.codename}"
               for p in Group.objects.get(name="Gate").permissions.select_related("content_type")}
    assert granted == {"wallets.view_gatedevice", "wallets.view_gatescan", "wallets.scan_at_gate"}


def test_the_gate_group_migration_can_run_again_without_duplicates(db):
    migration = importlib.import_module("wallets.migrations.0005_gate_staff_scanners")
    before = {g.name: g.permissions.count() for g in Group.objects.all()}
    migration.create_gate_group(apps)
    assert {g.name: g.permissions.count() for g in Group.objects.all()} == before


def test_a_gate_user_sees_exactly_gate_devices_and_gate_scans_in_the_admin(gate_staff):
    index = gate_staff.get(reverse("admin:index"))
    assert index.status_code == 200
    shown = {(app["app_label"], model["object_name"]) for app in index.context["app_list"] for model in app["models"]}
    assert shown == {("wallets", "GateDevice"), ("wallets", "GateScan")}


def test_a_gate_user_reads_devices_the_scan_log_attendance_and_the_scanner_page(gate_staff, device):
    for url in (DEVICES, reverse("admin:wallets_gatedevice_change", args=[device.pk]), SCANS, ATTENDANCE,
                "/gate/scan/"):
        assert gate_staff.get(url).status_code == 200, url
    # Read-only: no registering, renaming or revoking devices.
    assert gate_staff.get(reverse("admin:wallets_gatedevice_add")).status_code == 403
    gate_staff.post(reverse("admin:wallets_gatedevice_change", args=[device.pk]), {"name": "Renamed"})
    assert GateDevice.objects.get(pk=device.pk).name == "North entrance 1"


@pytest.mark.parametrize("url_name", [
    "admin:channel_manager_order_changelist", "admin:channel_manager_partner_changelist",
    "admin:channel_manager_apikey_changelist", "admin:wallets_wallet_changelist", "admin:wallets_asset_changelist",
    "admin:catalog_item_changelist", "admin:auth_user_changelist", "admin:notifications_event_changelist",
    "admin:channel_manager_order_export",
])
def test_a_gate_user_is_refused_everywhere_else(gate_staff, url_name):
    assert gate_staff.get(reverse(url_name)).status_code == 403


def test_support_and_finance_do_not_see_the_gate(db):
    for user in (staff_user("sam", "Support"), staff_user("fran", "Finance")):
        browser = logged_in(user)
        assert browser.get(SCANS).status_code == 403
        assert browser.get(ATTENDANCE).status_code == 403
        assert browser.get(DEVICES).status_code == 403


# ---- the scan log -------------------------------------------------------------------------


def listed(response) -> list[GateScan]:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.fixture
def logged_scans(order, device, catalog):
    """An accepted and a rejected scan on North entrance 1, an unknown code on South gate."""
    code = ticket(order, "DAY-ADULT").asset_number
    south = create_gate_device(name="South gate")[0]
    scan_code(device=device, code=code, scanned_at=NOON)
    scan_code(device=device, code=code, scanned_at=NOON + dt.timedelta(minutes=1))
    scan_code(device=south, code="NOT-A-TICKET", scanned_at=NOON + dt.timedelta(minutes=2))
    return code, device, south


def test_the_scan_log_is_searchable_by_code_as_typed(gate_staff, logged_scans):
    code, _, _ = logged_scans
    assert {s.result for s in listed(gate_staff.get(SCANS, {"q": code.lower()}))} == {"accepted", "rejected"}


def test_the_scan_log_is_searchable_by_device_name_prefix_and_id(gate_staff, logged_scans):
    _, north, south = logged_scans
    assert [s.code for s in listed(gate_staff.get(SCANS, {"q": "south"}))] == ["NOT-A-TICKET"]
    assert len(listed(gate_staff.get(SCANS, {"q": north.prefix}))) == 2
    assert len(listed(gate_staff.get(SCANS, {"q": str(north.device_id)}))) == 2


def test_the_scan_log_is_searchable_by_result_and_reason(gate_staff, logged_scans):
    assert [s.reason for s in listed(gate_staff.get(SCANS, {"q": "accepted"}))] == [None]
    assert [s.reason for s in listed(gate_staff.get(SCANS, {"q": "already redeemed"}))] == ["already_redeemed"]


def test_the_scan_log_filters_by_result_reason_and_device(gate_staff, logged_scans):
    _, north, south = logged_scans
    assert len(listed(gate_staff.get(SCANS, {"result__exact": "rejected"}))) == 2
    assert [s.code for s in listed(gate_staff.get(SCANS, {"reason": "unknown_code"}))] == ["NOT-A-TICKET"]
    assert len(listed(gate_staff.get(SCANS, {"device__id__exact": north.pk}))) == 2


def test_the_scan_log_tells_staff_scanners_from_devices(gate_staff, logged_scans, order):
    staff_device = GateDevice.objects.create(name="Staff: gina", prefix="x", digest="d" * 64,
                                             user=staff_user("gina2", "Gate"))
    scan_code(device=staff_device, code="NOPE", scanned_at=NOON)
    assert [s.code for s in listed(gate_staff.get(SCANS, {"scanner": "staff"}))] == ["NOPE"]
    assert len(listed(gate_staff.get(SCANS, {"scanner": "device"}))) == 3


def test_the_scan_log_page_reads_in_a_fixed_number_of_queries(gate_staff, logged_scans, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert len(listed(gate_staff.get(SCANS))) == 3


# ---- attendance ---------------------------------------------------------------------------


def test_attendance_counts_admitted_against_sold_per_item_and_slot(order, device):
    scan_code(device=device, code="ACME-G-1", scanned_at=NOON)  # the group ticket: 4 people
    scan_code(device=device, code=ticket(order, "DAY-ADULT").asset_number, scanned_at=NOON)
    rows, totals = attendance(day=DAY)
    by_slot = {(row["item_code"], row["visit_time"]): row for row in rows}
    assert set(by_slot) == {("DAY-ADULT", None), ("FAMILY-GROUP", None), ("SHOW-EVENING", dt.time(19, 30))}
    day, family, show = by_slot[("DAY-ADULT", None)], by_slot[("FAMILY-GROUP", None)], \
        by_slot[("SHOW-EVENING", dt.time(19, 30))]
    assert (day["sold"], day["sold_people"], day["used"], day["admitted"]) == (3, 3, 1, 1)
    assert (family["sold"], family["sold_people"], family["used"], family["admitted"]) == (1, 4, 1, 4)
    assert (show["sold"], show["used"], show["admitted"]) == (1, 0, 0)
    assert family["first_at"] == f"{NOON:%H:%M}"
    assert (totals["sold_people"], totals["admitted"], totals["waiting"]) == (8, 5, 3)


def test_attendance_does_not_count_cancelled_orders_as_sold(client, order):
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 200
    assert attendance(day=DAY) == ([], {"sold": 0, "sold_people": 0, "used": 0, "admitted": 0, "waiting": 0,
                                        "share": "—"})


def test_the_attendance_page_shows_a_date_with_totals(gate_staff, order, device):
    scan_code(device=device, code="ACME-G-1", scanned_at=NOON)
    page = gate_staff.get(ATTENDANCE, {"date": DAY.isoformat()})
    assert page.status_code == 200
    html = page.content.decode()
    assert "FAMILY-GROUP" in html and "Family group" in html and "19:30" in html
    assert page.context["totals"]["admitted"] == 4


def test_the_attendance_page_answers_an_unreadable_date_with_today(gate_staff, catalog):
    assert gate_staff.get(ATTENDANCE, {"date": "yesterday"}).status_code == 200


# ---- the order page ---------------------------------------------------------------------


def order_page(browser: Client, order: Order):
    return browser.get(reverse("admin:channel_manager_order_change", args=[order.pk]))


@pytest.fixture
def support(db) -> Client:
    return logged_in(staff_user("sam", "Support"))


def test_the_order_page_shows_which_assets_were_used_when_and_by_which_device(support, order, device):
    scan_code(device=device, code="ACME-G-1", scanned_at=NOON)
    html = order_page(support, order).content.decode()
    assert "1 used at the gate" in html
    assert f"used {NOON.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} by North entrance 1" in html


def test_the_order_page_reads_redemptions_in_a_fixed_number_of_queries(
    support, order, device, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    scan_code(device=device, code="ACME-G-1", scanned_at=NOON)
    order_page(support, order)  # warms per-process caches (content types), so both counts are alike
    with CaptureQueriesContext(connection) as one:
        order_page(support, order)
    others = create_gate_device(name="South gate")[0], create_gate_device(name="East gate")[0]
    scan_code(device=others[0], code="ACME-T-1", scanned_at=NOON)
    scan_code(device=others[1], code="ACME-T-2", scanned_at=NOON)
    with django_assert_num_queries(len(one.captured_queries)):
        html = order_page(support, order).content.decode()
    assert "3 used at the gate" in html and "by East gate" in html
