"""Test mode at the edges (API.md, "Test mode (partners)"): the gate refuses test codes, finance
and metrics never see test data, housekeeping and staff remove it, staff see it badged and
filtered out by default, and the demo prints a test key."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Capacity
from channel_manager.kernel.authentication import key_owner
from channel_manager.kernel.models import IdempotencyRecord
from channel_manager.ops import housekeeping
from channel_manager.orders.exports import ExportFilters, OrderLinesExporter, deleted_summary, export_summary
from channel_manager.orders.models import DeletedOrder, Order, OrderStatus
from channel_manager.orders.services import delete_order
from notifications.models import Event, Subscription
from tests.factories import PartnerFactory, SubscriptionFactory, staff_user, submit_order
from tests.payloads import line, order_body
from wallets.gate.devices import create_gate_device
from wallets.models import Asset, Wallet

pytestmark = pytest.mark.django_db

VENUE_TZ = ZoneInfo("Europe/Amsterdam")


def live_and_test_book(partner) -> dict[str, Order]:
    beta = PartnerFactory(partner_id="beta-travel")
    return {
        "live": submit_order(partner, order_body(items=[line("DAY-ADULT", 2), line("FAMILY-GROUP", 4)])),
        "beta": submit_order(beta, order_body("beta-travel", items=[line("DAY-ADULT", 1)])),
        "test": submit_order(partner, order_body(items=[line("DAY-ADULT", 3)]), livemode=False),
        "test-draft": submit_order(partner, order_body(paymentReference=None), livemode=False),
    }


# ---- the gate -----------------------------------------------------------------------------


def test_the_gate_refuses_a_test_tickets_code_with_test_ticket(catalog, partner):
    order = submit_order(partner, order_body(items=[line("DAY-ADULT", 1)]), livemode=False)
    assert order.status == OrderStatus.ISSUED
    asset = Asset.objects.get(wallet__order_link__order=order)
    Asset.objects.filter(pk=asset.pk).update(visit_date=timezone.localdate())
    _, token = create_gate_device(name="North")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    for code in (asset.asset_number, asset.wallet.wallet_reference_number):
        body = gate.post("/gate/scans", {"code": code}, format="json").json()
        assert (body["result"], body["reason"]) == ("rejected", "test_ticket")
    assert Asset.objects.get(pk=asset.pk).redeemed_at is None


# ---- finance and metrics ------------------------------------------------------------------


def export_csv(filters: ExportFilters) -> list[dict[str, str]]:
    text = b"".join(OrderLinesExporter(filters).iter_csv()).decode("utf-8").lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def summary_figures(filters: ExportFilters):
    summary = export_summary(filters)
    deleted = deleted_summary(filters)
    return (
        [(r.partner_id, r.currency, r.orders, r.tickets, r.amount) for r in summary.rows + summary.totals],
        [(r.partner_id, r.orders, r.amount) for r in deleted.rows],
    )


def test_an_export_with_test_orders_present_equals_one_without_them(catalog, partner):
    live = submit_order(partner, order_body(items=[line("DAY-ADULT", 2), line("FAMILY-GROUP", 4)]))
    cancelled = submit_order(partner, order_body(items=[line("DAY-ADULT", 1)]))
    delete_order(order=cancelled, actor="partner:acme-travel")
    deleted = submit_order(partner, order_body(paymentReference=None))
    delete_order(order=deleted, actor="partner:acme-travel")
    filters = [ExportFilters(), ExportFilters(statuses=("Issued",)), ExportFilters(partner_pk=partner.pk)]
    before = [(export_csv(f), summary_figures(f)) for f in filters]
    assert before[0][0] and live.status == OrderStatus.ISSUED

    # The same partner's test orders: issued, cancelled, and deleted (a test tombstone).
    submit_order(partner, order_body(items=[line("DAY-ADULT", 5)]), livemode=False)
    test_cancelled = submit_order(partner, order_body(items=[line("DAY-ADULT", 1)]), livemode=False)
    delete_order(order=test_cancelled, actor="partner:acme-travel")
    test_deleted = submit_order(partner, order_body(paymentReference=None), livemode=False)
    delete_order(order=test_deleted, actor="partner:acme-travel")
    assert Order.objects.filter(livemode=False).count() == 2
    assert DeletedOrder.objects.filter(livemode=False).count() == 1

    assert [(export_csv(f), summary_figures(f)) for f in filters] == before


def test_the_admin_export_leaves_test_orders_out(catalog, partner):
    book = live_and_test_book(partner)
    client = Client()
    client.force_login(staff_user("fran", "Finance"))
    response = client.get(reverse("admin:channel_manager_order_export"), {"date_field": "created", "format": "csv"})
    text = b"".join(response.streaming_content).decode("utf-8")
    references = {row["buyFromOrderReference"] for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    assert references == {book["live"].buy_from_order_reference, book["beta"].buy_from_order_reference}


def test_the_orders_metric_counts_live_orders_only(catalog, partner):
    from channel_manager.ops.collectors import DatabaseCollector

    live_and_test_book(partner)
    (orders,) = [m for m in DatabaseCollector().collect() if m.name == "cm_orders"]
    counts = {s.labels["status"]: s.value for s in orders.samples}
    assert counts["Issued"] == 2 and counts["Draft"] == 0


# ---- housekeeping -------------------------------------------------------------------------


def test_housekeeping_removes_test_orders_older_than_the_retention_with_wallets_and_events(
    catalog, partner, settings
):
    settings.TEST_DATA_RETENTION_DAYS = 30
    book = live_and_test_book(partner)
    young_test = submit_order(partner, order_body(), livemode=False)
    old = [book["live"], book["beta"], book["test"], book["test-draft"]]
    Order.objects.filter(pk__in=[o.pk for o in old]).update(created_at=timezone.now() - dt.timedelta(days=31))
    test_wallets = list(Wallet.objects.filter(order_link__order__in=[book["test"], book["test-draft"]]))
    assert test_wallets

    assert housekeeping.prune_test_data() == 2

    assert set(Order.objects.values_list("pk", flat=True)) == {book["live"].pk, book["beta"].pk, young_test.pk}
    assert not Wallet.objects.filter(pk__in=[w.pk for w in test_wallets]).exists()
    subjects = set(Event.objects.values_list("subject_id", flat=True))
    assert subjects == {str(o.order_id) for o in (book["live"], book["beta"], young_test)}
    # The test pool gave back what the old test orders held; live capacity is as it was.
    sold = {mode: sum(Capacity.objects.filter(livemode=mode).values_list("sold", flat=True)) for mode in (True, False)}
    assert sold == {True: 7, False: 1}


def test_housekeeping_of_test_data_works_in_bounded_batches(catalog, partner, settings):
    for _ in range(3):
        submit_order(partner, order_body(), livemode=False)
    Order.objects.update(created_at=timezone.now() - dt.timedelta(days=40))
    assert housekeeping.prune_test_data(limit=20) == 2  # a tenth of the batch: orders cascade
    assert housekeeping.prune_test_data(limit=20) == 1
    assert not Order.objects.exists()


# ---- the admin ----------------------------------------------------------------------------


@pytest.fixture
def support(db) -> Client:
    client = Client()
    client.force_login(staff_user("sam", "Support"))
    return client


def changelist_pks(response) -> set[int]:
    assert response.status_code == 200
    return {order.pk for order in response.context["cl"].result_list}


def test_the_order_list_hides_test_orders_by_default_and_badges_them_when_asked(admin_client, catalog, partner):
    book = live_and_test_book(partner)
    url = reverse("admin:channel_manager_order_changelist")
    assert changelist_pks(admin_client.get(url)) == {book["live"].pk, book["beta"].pk}
    response = admin_client.get(url, {"mode": "test"})
    assert changelist_pks(response) == {book["test"].pk, book["test-draft"].pk}
    assert "cm-test-badge" in response.content.decode()
    assert len(changelist_pks(admin_client.get(url, {"mode": "all"}))) == 4


def test_a_test_orders_page_is_badged(admin_client, catalog, partner):
    order = submit_order(partner, order_body(), livemode=False)
    page = admin_client.get(reverse("admin:channel_manager_order_change", args=[order.pk]))
    assert page.status_code == 200 and "cm-test-badge" in page.content.decode()


def test_staff_issue_a_test_key_beside_live_keys_shown_once(admin_client, partner):
    url = reverse("admin:channel_manager_partner_issue_key", args=[partner.pk])
    response = admin_client.post(url, {"label": "sandbox", "mode": "test"})
    assert response.status_code == 200
    (raw,) = set(re.findall(r"cmk_test_[A-Za-z0-9_-]+", response.content.decode()))
    assert key_owner(raw) == (partner, False)


def test_purging_a_partners_test_data_asks_first_naming_the_counts(admin_client, catalog, partner):
    live_and_test_book(partner)
    url = reverse("admin:channel_manager_partner_purge_test_data", args=[partner.pk])
    page = admin_client.get(url).content.decode()
    assert "2 test orders" in page and "test wallets" in page
    assert Order.objects.filter(livemode=False).count() == 2  # nothing happened yet


def test_purging_a_partners_test_data_never_touches_live_rows(admin_client, catalog, partner, settings):
    book = live_and_test_book(partner)
    other_test = submit_order(book["beta"].partner, order_body("beta-travel"), livemode=False)
    SubscriptionFactory(partner=partner, livemode=False)
    live_subscription = SubscriptionFactory(partner=partner)
    IdempotencyRecord.objects.create(partner=partner, livemode=False, key="k", request_hash="x")
    live_wallets = set(Wallet.objects.filter(livemode=True).values_list("pk", flat=True))
    live_events = set(Event.objects.filter(livemode=True).values_list("pk", flat=True))

    url = reverse("admin:channel_manager_partner_purge_test_data", args=[partner.pk])
    response = admin_client.post(url)

    assert response.status_code == 302
    assert set(Order.objects.values_list("pk", flat=True)) == {book["live"].pk, book["beta"].pk, other_test.pk}
    assert set(Wallet.objects.filter(livemode=True).values_list("pk", flat=True)) == live_wallets
    assert set(Event.objects.filter(livemode=True).values_list("pk", flat=True)) == live_events
    assert list(Subscription.objects.filter(partner=partner)) == [live_subscription]
    assert not IdempotencyRecord.objects.filter(partner=partner).exists()
    assert not Wallet.objects.filter(partner=partner, livemode=False).exists()


# ---- the demo -----------------------------------------------------------------------------


def test_the_demo_prints_a_live_and_a_test_key_and_reuses_them(catalog, tmp_path):
    key_file = tmp_path / "demo_api_key"

    def run() -> str:
        out = StringIO()
        call_command("bootstrap_demo", "--key-file", str(key_file), stdout=out)
        return out.getvalue()

    first = run()
    live = key_file.read_text().strip()
    test = (tmp_path / "demo_test_api_key").read_text().strip()
    assert live in first and test in first
    assert test.startswith("cmk_test_") and key_owner(test)[1] is False
    second = run()
    assert live in second and test in second


# ---- the Apple Wallet pass ----------------------------------------------------------------


def test_a_test_orders_pass_says_test_not_valid_for_entry(catalog, partner):
    from wallets import passkit
    from wallets.selectors import build_manifest, wallet_for_token

    passes = {}
    for livemode in (True, False):
        order = submit_order(partner, order_body(items=[line("DAY-ADULT", 1)]), livemode=livemode)
        token = Wallet.objects.get(order_link__order=order).manifest_token
        manifest = build_manifest(wallet_for_token(token=token))
        passes[livemode] = passkit.pass_json(manifest, pass_type_id="pass.example", team_id="TEAM", page_url="u")
    assert passes[False]["logoText"] == "TEST — not valid for entry"
    assert passes[False]["eventTicket"]["headerFields"][0] == {
        "key": "test", "label": "TEST", "value": "NOT VALID FOR ENTRY"
    }
    assert "TEST" not in str(passes[True]["eventTicket"]["headerFields"])
