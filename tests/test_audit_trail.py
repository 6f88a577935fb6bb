"""The audit trail of deleted orders: a tombstone per deleted Draft or Error order (who, when, why,
and the order as getOrder showed it), written with the delete; none for Issued → Cancelled;
searchable by support in the admin; in the finance export; pruned after the retention."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
from decimal import Decimal
from types import SimpleNamespace
from unittest import mock

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule
from openpyxl import load_workbook

from channel_manager.ops import housekeeping
from channel_manager.orders import services
from channel_manager.orders.admin.tombstones import REDACTED
from channel_manager.orders.exports import DeletedOrdersExporter, ExportFilters
from channel_manager.orders.models import DeletedOrder, Order, OrderStatus
from tests.factories import PartnerFactory, staff_user, submit_order
from tests.payloads import line, order_body

pytestmark = pytest.mark.django_db

TOMBSTONES = "admin:channel_manager_deletedorder_changelist"
EXPORT = "admin:channel_manager_order_export"
DELETED_COLUMNS = [
    "buyFromOrderReference", "sellToOrderReference", "partnerId", "orderId", "statusAtDeletion",
    "paymentReference", "currency", "orderTotal", "createdAt", "deletedAt", "deletedBy", "reason",
]


@pytest.fixture(autouse=True)
def _groups(db):
    # A transactional test may have flushed what the migrations made: make it again.
    importlib.import_module("channel_manager.migrations.0003_staff_groups").create_staff_groups(apps)
    importlib.import_module("channel_manager.migrations.0010_tombstone_housekeeping").grant_support_view(apps)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def support() -> Client:
    return logged_in(staff_user("sam", "Support"))


@pytest.fixture
def finance() -> Client:
    return logged_in(staff_user("fran", "Finance"))


def draft_order(partner, **overrides) -> Order:
    order = submit_order(partner, order_body(paymentReference=None, **overrides))
    assert order.status == OrderStatus.DRAFT
    return order


def error_order(partner, **overrides) -> Order:
    """Settles in Error (no 18:00 show), keeping its paymentReference."""
    body = order_body(items=[line("DAY-ADULT", 1), line("SHOW-EVENING", 2, visitTime="18:00")], **overrides)
    order = submit_order(partner, body)
    assert order.status == OrderStatus.ERROR
    return order


# ---- written by every delete of a Draft or Error order ---------------------------------------


def test_api_delete_of_a_draft_leaves_a_tombstone_with_the_order_as_get_order_showed_it(client, catalog, partner):
    order = draft_order(partner, items=[line("DAY-ADULT", 2, wallet={"externalReferenceNumbers": ["T-1", "T-2"]})])
    shown = client.get(f"/channelManager/{order.order_id}").json()
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 204
    assert not Order.objects.filter(pk=order.pk).exists()
    tombstone = DeletedOrder.objects.get()
    assert tombstone.order_id == order.order_id
    assert tombstone.order_pk == order.pk
    assert tombstone.buy_from_order_reference == order.buy_from_order_reference
    assert tombstone.sell_to_order_reference == order.sell_to_order_reference
    assert tombstone.partner == partner
    assert tombstone.status == OrderStatus.DRAFT
    assert tombstone.payment_reference is None
    assert tombstone.total_amount == order.total_amount and tombstone.currency == order.currency
    assert tombstone.actor == "partner:acme-travel" and tombstone.reason == ""
    assert tombstone.created_at == order.created_at
    assert timezone.now() - tombstone.deleted_at < dt.timedelta(minutes=1)
    # The snapshot is the order with its wallets as they were, before they were destroyed.
    assert tombstone.order_json == shown
    assert [w["externalReferenceNumber"] for w in tombstone.order_json["items"][0]["wallets"]] == ["T-1", "T-2"]


def test_api_delete_of_an_error_order_keeps_its_payment_reference(client, catalog, partner):
    order = error_order(partner, paymentReference="PAY-GONE-1")
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 204
    tombstone = DeletedOrder.objects.get(order_id=order.order_id)
    assert tombstone.status == OrderStatus.ERROR and tombstone.payment_reference == "PAY-GONE-1"
    assert tombstone.order_json["statusMessage"] == order.status_message


def test_the_partner_reference_is_free_again_after_a_delete(client, catalog, partner):
    order = draft_order(partner)
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 204
    again = client.post("/channelManager", order_body(sellToOrderReference=order.sell_to_order_reference),
                        format="json")
    assert again.status_code == 202
    assert DeletedOrder.objects.get().sell_to_order_reference == order.sell_to_order_reference


def test_admin_delete_leaves_a_tombstone_naming_the_staff_member_and_the_reason(support, catalog, partner):
    order = error_order(partner)
    url = reverse("admin:channel_manager_order_remove", args=[order.pk])
    assert support.post(url, {"reason": "Partner asked by phone (ticket #123)"}).status_code == 302
    tombstone = DeletedOrder.objects.get(order_id=order.order_id)
    assert tombstone.actor == "staff:sam"
    assert tombstone.reason == "Partner asked by phone (ticket #123)"


def test_admin_bulk_delete_leaves_a_tombstone_per_deleted_order(support, catalog, partner):
    draft, error = draft_order(partner), error_order(partner)
    issued = submit_order(partner, order_body())
    selected = [draft.pk, error.pk, issued.pk]
    support.post(reverse("admin:channel_manager_order_changelist"),
                 {"action": "delete_orders", "_selected_action": selected, "post": "yes", "reason": "Test bookings"})
    assert set(DeletedOrder.objects.values_list("order_id", "actor", "reason")) == {
        (draft.order_id, "staff:sam", "Test bookings"), (error.order_id, "staff:sam", "Test bookings"),
    }


def test_issued_to_cancelled_keeps_its_row_and_writes_no_tombstone(client, catalog, partner):
    order = submit_order(partner, order_body())
    assert order.status == OrderStatus.ISSUED
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 200
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 200  # Cancelled: a no-op
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert not DeletedOrder.objects.exists()


def test_a_delete_that_fails_leaves_neither_tombstone_nor_change(catalog, partner):
    order = draft_order(partner)
    with mock.patch.object(services, "delete_wallets", side_effect=RuntimeError("disk full")):
        with pytest.raises(RuntimeError):
            services.delete_order(order=order)
    assert Order.objects.filter(pk=order.pk, status=OrderStatus.DRAFT).exists()
    assert not DeletedOrder.objects.exists()


# ---- support searches them -------------------------------------------------------------------


@pytest.fixture
def tombstones(catalog, partner):
    """Three deleted orders of two partners."""
    beta = PartnerFactory(partner_id="beta-travel", name="Beta Travel")
    orders = [
        draft_order(partner, sellToOrderReference="ACME-DEL-1"),
        error_order(partner, sellToOrderReference="ACME-DEL-2", paymentReference="PAY-9931"),
        draft_order(beta, sellToOrderReference="BETA-DEL-1"),
    ]
    for order in orders:
        services.delete_order(order=order, actor="staff:sam", reason="test")
    return {t.sell_to_order_reference: t for t in DeletedOrder.objects.all()}


def search(client, term: str) -> set[str]:
    response = client.get(reverse(TOMBSTONES), {"q": term})
    assert response.status_code == 200
    return {t.sell_to_order_reference for t in response.context["cl"].result_list}


def test_support_searches_tombstones_by_order_id_references_payment_reference_and_partner(support, tombstones):
    first, second = tombstones["ACME-DEL-1"], tombstones["ACME-DEL-2"]
    assert search(support, str(first.order_id)) == {"ACME-DEL-1"}
    assert search(support, first.buy_from_order_reference) == {"ACME-DEL-1"}
    assert search(support, "acme-del") == {"ACME-DEL-1", "ACME-DEL-2"}
    assert search(support, "PAY-9931") == {"ACME-DEL-2"}
    assert search(support, "beta-travel") == {"BETA-DEL-1"}
    assert search(support, "nothing-like-it") == set()
    page = support.get(reverse("admin:channel_manager_deletedorder_change", args=[second.pk]))
    assert page.status_code == 200
    assert "PAY-9931" in page.content.decode() and "ACME-DEL-2" in page.content.decode()


def test_tombstones_are_read_only_even_for_a_superuser(tombstones):
    from django.contrib.auth.models import User

    admin = logged_in(User.objects.create_superuser("root", "root@example.com", "pw"))
    tombstone = tombstones["ACME-DEL-1"]
    assert admin.get(reverse("admin:channel_manager_deletedorder_add")).status_code == 403
    assert admin.get(reverse("admin:channel_manager_deletedorder_delete", args=[tombstone.pk])).status_code == 403
    admin.post(reverse("admin:channel_manager_deletedorder_change", args=[tombstone.pk]), {"reason": "rewritten"})
    assert DeletedOrder.objects.get(pk=tombstone.pk).reason == "test"


def test_finance_does_not_browse_tombstones_but_exports_them(finance, tombstones):
    assert finance.get(reverse(TOMBSTONES)).status_code == 403


def test_manifest_links_in_the_snapshot_are_hidden_without_permission_to_view_wallets(catalog, partner):
    order = draft_order(partner)
    services.delete_order(order=order)
    tombstone = DeletedOrder.objects.get()
    manifest_url = tombstone.order_json["items"][0]["wallets"][0]["manifestUrl"]
    assert manifest_url
    reader = staff_user("rita")
    reader.user_permissions.add(Permission.objects.get(codename="view_deletedorder"))
    url = reverse("admin:channel_manager_deletedorder_change", args=[tombstone.pk])
    html = logged_in(reader).get(url).content.decode()
    assert manifest_url not in html and REDACTED in html
    assert tombstone.sell_to_order_reference in html


# ---- finance exports them --------------------------------------------------------------------


def export(client, **params):
    return client.get(reverse(EXPORT), {"date_field": "created", **params})


def deleted_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="deleted-orders-' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    assert reader.fieldnames == DELETED_COLUMNS
    return list(reader)


def test_the_export_lists_deleted_orders_with_references_amounts_who_and_when(finance, tombstones):
    rows = {r["sellToOrderReference"]: r for r in deleted_csv(export(finance, format="deleted_csv"))}
    assert set(rows) == {"ACME-DEL-1", "ACME-DEL-2", "BETA-DEL-1"}
    draft, error = rows["ACME-DEL-1"], rows["ACME-DEL-2"]
    tombstone = tombstones["ACME-DEL-1"]
    assert draft["buyFromOrderReference"] == tombstone.buy_from_order_reference
    assert draft["orderId"] == str(tombstone.order_id)
    assert draft["partnerId"] == "acme-travel" and draft["statusAtDeletion"] == "Draft"
    assert Decimal(draft["orderTotal"]) == tombstone.total_amount > 0
    assert draft["deletedBy"] == "staff:sam" and draft["reason"] == "test"
    assert dt.datetime.fromisoformat(draft["deletedAt"]) == tombstone.deleted_at
    assert error["paymentReference"] == "PAY-9931" and error["orderTotal"] == ""


def test_the_deleted_export_filters_by_deletion_day_partner_and_status(finance, tombstones):
    def refs(**params) -> set[str]:
        return {r["sellToOrderReference"] for r in deleted_csv(export(finance, format="deleted_csv", **params))}

    today = timezone.localdate()
    DeletedOrder.objects.filter(sell_to_order_reference="BETA-DEL-1").update(
        deleted_at=timezone.now() - dt.timedelta(days=10))
    assert refs(date_from=today.isoformat()) == {"ACME-DEL-1", "ACME-DEL-2"}
    assert refs(date_to=(today - dt.timedelta(days=5)).isoformat()) == {"BETA-DEL-1"}
    beta = DeletedOrder.objects.get(sell_to_order_reference="BETA-DEL-1").partner
    assert refs(partner=beta.pk) == {"BETA-DEL-1"}
    assert refs(status="Error") == {"ACME-DEL-2"}


def test_the_deleted_export_as_xlsx(finance, tombstones):
    response = export(finance, format="deleted_xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == DELETED_COLUMNS and len(values) == 4
    assert sheet.title == "Deleted orders"


def test_the_summary_page_has_a_deleted_section(finance, tombstones):
    page = export(finance, summary="1")
    assert page.status_code == 200
    deleted = page.context["deleted"]
    assert deleted.count == 3
    assert {(r.partner_id, r.orders) for r in deleted.rows} == {("acme-travel", 2), ("beta-travel", 1)}
    html = page.content.decode()
    assert 'id="cm-deleted"' in html and "PAY-9931" in html and "staff:sam" in html


def test_the_orders_export_is_unchanged_by_deleted_orders(finance, tombstones):
    text = b"".join(export(finance, format="csv").streaming_content).decode("utf-8")
    assert text.lstrip("\ufeff").count("\n") == 1  # the header only: deleted orders have no lines


def test_the_deleted_exporter_reads_in_a_fixed_number_of_queries(tombstones, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        assert len(list(DeletedOrdersExporter(ExportFilters()).iter_csv())) >= 1


# ---- retained, then pruned -------------------------------------------------------------------


def test_tombstones_are_pruned_after_the_retention(tombstones, settings):
    settings.TOMBSTONE_RETENTION_DAYS = 400
    DeletedOrder.objects.filter(sell_to_order_reference="ACME-DEL-1").update(
        deleted_at=timezone.now() - dt.timedelta(days=401))
    DeletedOrder.objects.filter(sell_to_order_reference="ACME-DEL-2").update(
        deleted_at=timezone.now() - dt.timedelta(days=399))
    assert housekeeping.prune_deleted_orders() == 1
    assert set(DeletedOrder.objects.values_list("sell_to_order_reference", flat=True)) == {"ACME-DEL-2", "BETA-DEL-1"}
    settings.TOMBSTONE_RETENTION_DAYS = 30
    assert housekeeping.prune_deleted_orders(limit=10) == 1
    assert housekeeping.prune_deleted_orders() == 0


def test_the_prune_schedule_comes_with_the_migrations():
    migration = importlib.import_module("channel_manager.migrations.0010_tombstone_housekeeping")
    migration.create_schedule(apps, SimpleNamespace(connection=connection))
    schedule = Schedule.objects.get(name="prune-deleted-orders")
    assert schedule.func == housekeeping.SCHEDULES["prune-deleted-orders"]
