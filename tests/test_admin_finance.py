"""Finance in the admin: the export of orders and lines (CSV and XLSX: rows, totals, filters,
formula-injection safety, streaming in constant queries), the summary per partner and currency,
and that finance can look but not change."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook
from openpyxl.utils.escape import unescape

from catalog import selectors as catalog_selectors
from channel_manager.orders.exports import ExportFilters, OrderLinesExporter, export_summary
from channel_manager.orders.models import Order, OrderStatus
from channel_manager.orders.services import delete_order
from tests.factories import PartnerFactory, staff_user, submit_order
from tests.payloads import line, order_body, visit_date

pytestmark = pytest.mark.django_db

EXPORT = "admin:channel_manager_order_export"
CHANGELIST = "admin:channel_manager_order_changelist"
COLUMNS = [
    "buyFromOrderReference", "sellToOrderReference", "partnerId", "status", "paymentReference", "createdAt",
    "issuedAt", "cancelledAt", "lineNumber", "itemId", "itemType", "quantity", "visitDate", "unitPrice",
    "lineTotal", "currency", "orderTotal",
]


@pytest.fixture
def finance(db) -> Client:
    client = Client()
    client.force_login(staff_user("fran", "Finance"))
    return client


@pytest.fixture
def support(db) -> Client:
    client = Client()
    client.force_login(staff_user("sam", "Support"))
    return client


SCHEDULE = {"componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": visit_date(), "visitTime": "19:30"}]}


@pytest.fixture
def book(catalog, partner):
    """Five orders of two partners in every settled state (prices of the demo catalog)."""
    beta = PartnerFactory(partner_id="beta-travel", name="Beta Travel")
    orders = {
        "issued": submit_order(partner, order_body(items=[line("DAY-ADULT", 2), line("FAMILY-GROUP", 4)])),
        "draft": submit_order(partner, order_body(paymentReference=None,
                                                  items=[line("SHOW-EVENING", 1, visitTime="19:30")])),
        "error": submit_order(partner, order_body(items=[line("DAY-ADULT", 1),
                                                         line("SHOW-EVENING", 1, visitTime="18:00")])),
        "beta": submit_order(beta, order_body("beta-travel", items=[line("PARK-AND-SHOW", 2, wallet=SCHEDULE)])),
        "cancelled": submit_order(partner, order_body(items=[line("DAY-ADULT", 1)])),
    }
    delete_order(order=orders["cancelled"], actor="partner:acme-travel")
    for order in orders.values():
        order.refresh_from_db()
    assert [o.status for o in orders.values()] == ["Issued", "Draft", "Error", "Issued", "Cancelled"]
    return orders


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content[:500]
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    reader = csv.DictReader(io.StringIO(text[1:]))
    assert reader.fieldnames == COLUMNS
    return list(reader)


def xlsx_rows(response) -> tuple[list[str], list[list]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    data = b"".join(response.streaming_content)
    sheet = load_workbook(io.BytesIO(data)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    return values[0], values[1:]


def export(client, **params):
    query = {"date_field": "created", **params}
    return client.get(reverse(EXPORT), query)


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def test_csv_has_a_row_per_line_with_its_order(finance, book):
    rows = csv_rows(export(finance, format="csv"))
    assert len(rows) == 7  # 2 + 1 + 2 + 1 + 1 lines
    issued = book["issued"]
    first, second = [r for r in rows if r["buyFromOrderReference"] == issued.buy_from_order_reference]
    assert first == {
        "buyFromOrderReference": issued.buy_from_order_reference,
        "sellToOrderReference": issued.sell_to_order_reference,
        "partnerId": "acme-travel",
        "status": "Issued",
        "paymentReference": "PAY-77812",
        "createdAt": issued.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "issuedAt": issued.issued_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "cancelledAt": "",
        "lineNumber": "1",
        "itemId": "DAY-ADULT",
        "itemType": "ticket",
        "quantity": "2",
        "visitDate": visit_date(),
        "unitPrice": "49.50",
        "lineTotal": "99.00",
        "currency": "EUR",
        "orderTotal": "249.00",
    }
    assert (second["lineNumber"], second["itemType"], second["quantity"], second["unitPrice"],
            second["lineTotal"]) == ("2", "group_ticket", "4", "150.00", "150.00")
    error_lines = [r for r in rows if r["status"] == "Error"]
    assert [(r["unitPrice"], r["lineTotal"], r["orderTotal"]) for r in error_lines] == [("", "", "")] * 2
    cancelled = next(r for r in rows if r["status"] == "Cancelled")
    assert cancelled["cancelledAt"].endswith("Z") and cancelled["orderTotal"] == "49.50"
    # Rows are in document order: by buyFromOrderReference, then line.
    assert rows == sorted(rows, key=lambda r: (r["buyFromOrderReference"], int(r["lineNumber"])))


def test_csv_totals_match_the_orders_totals(finance, book):
    rows = csv_rows(export(finance, format="csv"))
    line_sum = sum(Decimal(r["lineTotal"]) for r in rows if r["lineTotal"])
    per_order = {r["buyFromOrderReference"]: Decimal(r["orderTotal"]) for r in rows if r["orderTotal"]}
    assert line_sum == sum(per_order.values()) == Decimal("448.50")  # 249 + 20 + 130 + 49.50


def test_csv_filters_by_status_partner_and_each_date(finance, book):
    def refs(**params) -> set[str]:
        return {r["buyFromOrderReference"] for r in csv_rows(export(finance, format="csv", **params))}

    ref = {name: order.buy_from_order_reference for name, order in book.items()}
    assert refs(status=["Issued"]) == {ref["issued"], ref["beta"]}
    assert refs(status=["Draft", "Error"]) == {ref["draft"], ref["error"]}
    assert refs(partner=book["beta"].partner_id) == {ref["beta"]}
    assert refs(date_field="cancelled") == {ref["cancelled"]}
    assert refs(date_field="issued") == {ref["issued"], ref["beta"], ref["cancelled"]}

    now = timezone.now()
    Order.objects.filter(pk=book["issued"].pk).update(issued_at=now - dt.timedelta(days=10))
    Order.objects.filter(pk=book["beta"].pk).update(created_at=now - dt.timedelta(days=40))
    today = now.date()
    days = {n: (today - dt.timedelta(days=n)).isoformat() for n in (12, 8, 7, 1)}
    assert refs(date_field="issued", date_from=days[12], date_to=days[8]) == {ref["issued"]}
    assert refs(date_field="created", date_from=days[7]) == {ref[n] for n in ("issued", "draft", "error", "cancelled")}
    assert refs(date_field="created", date_to=days[7]) == {ref["beta"]}
    assert refs(date_field="created", date_from=days[1], date_to=days[1]) == set()


def test_csv_is_safe_against_formula_injection(finance, catalog, partner):
    dangerous = {"=1+2": "@SUM(A1)", "-2+3": "+cmd|' /C calc'!A0", "=HYPERLINK(\"http://x\")": "%0A-3"}
    for reference, payment in dangerous.items():
        submit_order(partner, order_body(sellToOrderReference=reference, paymentReference=payment))
    rows = csv_rows(export(finance, format="csv"))
    cells = {r["sellToOrderReference"]: r["paymentReference"] for r in rows}
    assert cells == {
        "'=1+2": "'@SUM(A1)",
        "'-2+3": "'+cmd\\|' /C calc'!A0",
        "'=HYPERLINK(\"http://x\")": "'%0A-3",
    }
    # Numbers stay numbers.
    assert {r["lineTotal"] for r in rows} == {"49.50"}


# Text a spreadsheet reads as a formula although whitespace comes first (stored as is: rows
# written before references were checked, or by staff). Written to the rows directly.
HIDDEN_FORMULAS = {
    "\t=1+2": "\r@SUM(A1)",
    "\r-2+3": "\t+cmd|' /C calc'!A0",
    "\t\r =HYPERLINK(\"http://x\")": "\n%0A-3",
    "\tplain text": "\t-12.50",
}


def orders_with_hidden_formulas(partner) -> None:
    for reference, payment in HIDDEN_FORMULAS.items():
        order = submit_order(partner, order_body())
        Order.objects.filter(pk=order.pk).update(sell_to_order_reference=reference, payment_reference=payment)


def test_csv_defuses_formulas_behind_leading_tabs_and_carriage_returns(finance, catalog, partner):
    orders_with_hidden_formulas(partner)
    rows = csv_rows(export(finance, format="csv"))
    cells = {r["sellToOrderReference"]: r["paymentReference"] for r in rows}
    assert cells == {
        "'\t=1+2": "'\r@SUM(A1)",
        "'\r-2+3": "'\t+cmd\\|' /C calc'!A0",
        "'\t\r =HYPERLINK(\"http://x\")": "'\n%0A-3",
        "\tplain text": "\t-12.50",  # no formula: left as it is
    }


def test_xlsx_marks_formulas_behind_leading_tabs_and_carriage_returns_as_text(finance, catalog, partner):
    orders_with_hidden_formulas(partner)
    data = b"".join(export(finance, format="xlsx").streaming_content)
    sheet_xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    sheet = load_workbook(io.BytesIO(data)).active
    # A carriage return is stored as Excel writes it, "_x000D_", which Excel reads back as one;
    # openpyxl leaves such escapes as they are, so they are decoded here.
    cells = {unescape(row[1].value): (row[1], row[4]) for row in sheet.iter_rows(min_row=2)}
    for reference, payment in HIDDEN_FORMULAS.items():
        ref_cell, pay_cell = cells[reference]  # the text itself is kept as it was
        assert unescape(pay_cell.value) == payment
        formula = reference != "\tplain text"
        assert ref_cell.data_type == "s" and ref_cell.quotePrefix is formula, reference
        assert pay_cell.data_type == "s" and pay_cell.quotePrefix is formula, payment


def test_csv_streams_in_a_fixed_number_of_queries(finance, catalog, partner, monkeypatch):
    # The venue row is cached for seconds: on a slow run it would expire between the two counts.
    monkeypatch.setattr(catalog_selectors, "VENUE_CACHE_SECONDS", 3600.0)
    monkeypatch.setattr(catalog_selectors, "CATALOG_CACHE_SECONDS", 3600.0)
    submit_order(partner, order_body())

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            rows = csv_rows(export(finance, format="csv"))
        return len(queries), len(rows)

    few, n = count()
    for _ in range(12):
        submit_order(partner, order_body(items=[line("DAY-ADULT", 1), line("FAMILY-GROUP", 2)]))
    more, m = count()
    assert (more, m) == (few, n + 24)


def test_the_exporter_yields_in_chunks(catalog, partner):
    for _ in range(3):
        submit_order(partner, order_body(items=[line("DAY-ADULT", 1), line("FAMILY-GROUP", 2)]))
    exporter = OrderLinesExporter(ExportFilters(), chunk_size=2)
    exporter.csv_flush_bytes = 200
    chunks = list(exporter.iter_csv())
    assert len(chunks) > 2
    assert len(list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))) == 7


# ---------------------------------------------------------------------------------------------
# XLSX
# ---------------------------------------------------------------------------------------------


def test_xlsx_has_the_same_rows_with_numbers_and_dates(finance, book):
    header, rows = xlsx_rows(export(finance, format="xlsx"))
    assert header == COLUMNS
    assert len(rows) == 7
    by_ref = {(r[0], r[8]): dict(zip(COLUMNS, r, strict=True)) for r in rows}
    issued = book["issued"]
    first = by_ref[(issued.buy_from_order_reference, 1)]
    assert first["unitPrice"] == 49.5 and first["lineTotal"] == 99 and first["orderTotal"] == 249
    assert first["quantity"] == 2 and first["lineNumber"] == 1
    assert first["visitDate"].date() == dt.date.fromisoformat(visit_date())
    assert isinstance(first["createdAt"], dt.datetime)
    created = issued.created_at.astimezone(dt.UTC).replace(tzinfo=None)
    assert abs(first["createdAt"] - created) < dt.timedelta(seconds=1)
    assert first["cancelledAt"] is None
    assert sum(r["lineTotal"] or 0 for r in by_ref.values()) == pytest.approx(448.50)


def test_xlsx_shows_amounts_with_two_decimals_and_a_frozen_header(finance, book):
    data = b"".join(export(finance, format="xlsx").streaming_content)
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.freeze_panes == "A2"
    priced = next(row for row in sheet.iter_rows(min_row=2) if row[13].value is not None)
    for index in (13, 14, 16):
        assert priced[index].data_type == "n" and priced[index].number_format == "#,##0.00"
    assert priced[5].is_date


def test_xlsx_writes_formula_like_text_as_text(finance, catalog, partner):
    texts = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "#N/A"]
    for text in texts:
        submit_order(partner, order_body(sellToOrderReference=text, paymentReference=text))
    # The API now refuses control characters in references; an order stored before still has one.
    legacy = submit_order(partner, order_body(sellToOrderReference="LEGACY"))
    Order.objects.filter(pk=legacy.pk).update(sell_to_order_reference="BAD\x01REF")
    response = export(finance, format="xlsx")
    data = b"".join(response.streaming_content)
    sheet_xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    sheet = load_workbook(io.BytesIO(data)).active
    cells = {row[1].value: row[1] for row in sheet.iter_rows(min_row=2)}
    assert set(cells) == {*texts, "BADREF"}
    for text in texts:
        assert cells[text].data_type == "s", text
        payment = next(r[4] for r in sheet.iter_rows(min_row=2) if r[1].value == text)
        assert payment.value == text and payment.data_type == "s"


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def test_summary_per_partner_and_currency(finance, book):
    response = export(finance, summary="1")
    assert response.status_code == 200
    summary = response.context["summary"]
    figures = {(r.partner_id, r.currency): (r.orders, r.tickets, r.amount) for r in summary.rows}
    # acme: issued (2 day tickets + a group of 4), draft (1 show), error (none), cancelled (1 day ticket)
    # beta: two park-and-show wallets, each a day ticket and a show ticket.
    assert figures == {
        ("acme-travel", "EUR"): (4, 8, Decimal("318.50")),
        ("beta-travel", "EUR"): (1, 4, Decimal("130.00")),
    }
    assert [(t.currency, t.orders, t.tickets, t.amount) for t in summary.totals] == [("EUR", 5, 12, Decimal("448.50"))]
    html = response.content.decode()
    assert 'data-partner="acme-travel"' in html and "318.50" in html and "448.50" in html


def test_summary_follows_the_filters(finance, book):
    summary = export(finance, summary="1", status=["Issued"]).context["summary"]
    assert [(r.partner_id, r.orders, r.tickets, r.amount) for r in summary.rows] == [
        ("acme-travel", 1, 6, Decimal("249.00")),
        ("beta-travel", 1, 4, Decimal("130.00")),
    ]
    assert export_summary(ExportFilters(date_field="cancelled")).totals[0].amount == Decimal("49.50")


def test_a_replaced_orders_old_tickets_do_not_count(catalog, partner):
    from channel_manager.orders.admin.forms import same_content_input
    from channel_manager.orders.issuance import issue_order
    from channel_manager.orders.services import replace_order

    order = submit_order(partner, order_body(paymentReference=None, items=[line("FAMILY-GROUP", 5)]))
    order_input, errors = same_content_input(Order.objects.prefetch_related("lines").get(pk=order.pk))
    assert not errors
    replace_order(order=order, order_input=order_input, actor="staff:test")
    assert issue_order(order_pk=order.pk) == OrderStatus.DRAFT
    assert export_summary(ExportFilters()).rows[0].tickets == 5


def test_invalid_filters_are_shown_not_exported(finance, book):
    response = export(finance, format="csv", date_from="2026-02-01", date_to="2026-01-01")
    assert response.status_code == 200 and not response.streaming
    assert "Must not be before From" in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Who may do what
# ---------------------------------------------------------------------------------------------


def test_finance_reaches_the_export_from_the_order_list(finance, support, book):
    html = finance.get(reverse(CHANGELIST)).content.decode()
    assert reverse(EXPORT) in html
    assert finance.get(reverse(EXPORT)).status_code == 200
    assert reverse(EXPORT) not in support.get(reverse(CHANGELIST)).content.decode()
    assert support.get(reverse(EXPORT)).status_code == 403
    assert support.get(reverse(EXPORT), {"date_field": "created", "format": "csv"}).status_code == 403


def test_finance_sees_orders_but_cannot_change_or_act_on_them(finance, book):
    response = finance.get(reverse(CHANGELIST))
    assert response.status_code == 200 and response.context["action_form"] is None
    for name in ("draft", "error", "issued"):
        order = book[name]
        page = finance.get(reverse("admin:channel_manager_order_change", args=[order.pk]))
        assert page.status_code == 200
        html = page.content.decode()
        for view in ("reissue", "confirm", "remove"):
            url = reverse(f"admin:channel_manager_order_{view}", args=[order.pk])
            assert url not in html
            assert finance.get(url).status_code == 403
            assert finance.post(url, {"payment_reference": "P", "reason": "r", "items": "[]"}).status_code == 403
        assert finance.post(reverse("admin:channel_manager_order_change", args=[order.pk]), {}).status_code == 403
    for action in ("reissue_orders", "confirm_orders", "delete_orders"):
        finance.post(reverse(CHANGELIST), {"action": action, "_selected_action": [book["draft"].pk], "post": "yes",
                                           "reason": "r"})
    assert [o.status for o in Order.objects.filter(pk__in=[o.pk for o in book.values()]).order_by("pk")] == [
        "Issued", "Draft", "Error", "Issued", "Cancelled"
    ]


def test_finance_cannot_see_api_keys_or_change_partners(finance, partner):
    assert finance.get(reverse("admin:channel_manager_apikey_changelist")).status_code == 403
    page = finance.get(reverse("admin:channel_manager_partner_change", args=[partner.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert finance.get(reverse("admin:channel_manager_partner_add")).status_code == 403


def test_xlsx_writes_text_shaped_like_cell_markup_as_escaped_text(finance, catalog, partner):
    # xlsxwriter's constant-memory mode would copy text of the form <r>…</r> into the sheet's XML
    # as it is (taking it for a rich string): a reference could then rewrite the cell.
    markup = '<r><t>1</t></r></is></c><c r="Z1"><v>9</v></c><c><is><r></r>'
    order = submit_order(partner, order_body(sellToOrderReference="MARKUP"))
    Order.objects.filter(pk=order.pk).update(sell_to_order_reference=markup)
    data = b"".join(export(finance, format="xlsx").streaming_content)
    sheet = load_workbook(io.BytesIO(data)).active
    assert [row[1].value for row in sheet.iter_rows(min_row=2)] == [markup]
    assert sheet["Z1"].value is None
