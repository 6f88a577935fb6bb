"""Finance exports: orders and their lines as CSV and XLSX, and a summary per partner and
currency.

After pretix's ListExporter: the rows come from one generator over a single `values_list()`
query of the lines joined with their order and partner, read with a server-side cursor in
chunks (`.iterator(chunk_size=…)`), so that memory stays flat whatever the number of orders.
CSV goes through defusedcsv (cells starting with = + - @ | % are defused with a leading
apostrophe; so are cells where tabs, carriage returns, line feeds or spaces come first, which
spreadsheets skip: `defuse_text`) and is streamed in ~64 KiB chunks; XLSX goes through our
streaming writer (channel_manager/orders/xlsx.py: one string per row straight into the zip's
deflate stream, so memory stays flat; 100,000 orders in seconds where openpyxl took minutes,
bench/export_bench.py) into a temporary file, every string written as a string cell (never a
formula), formula-like text with Excel's quote prefix (so that editing the cell keeps it text),
amounts as numbers and timestamps as dates (UTC). Every exporter writes its rows through
`csv_writer` and `xlsx.SheetWriter`.

Date ranges are whole days in the venue's time zone, inclusive at both ends.

Deleted orders (Draft or Error orders a partner or staff removed) have no lines left: they come
from their tombstones (DeletedOrder), in their own section and files, by the day they were
deleted, with who deleted them and why.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import defusedcsv.csv as defused_csv
from django.db.models import Count, F, Q, QuerySet, Sum

from catalog.selectors import get_venue
from channel_manager.kernel.formats import rfc3339
from channel_manager.orders import xlsx
from channel_manager.orders.models import DeletedOrder, Order, OrderLine, format_buy_from_reference
from wallets.models import Asset, AssetType

# Text a spreadsheet may read as a formula: a trigger character, possibly after whitespace that
# spreadsheets skip (tab, CR, LF, space). Plain numbers such as "-2.5" are left alone.
_FORMULA_LIKE = re.compile(r"[\t\r\n ]*[=+\-@|%]")
_NUMBER = re.compile(r"-?[0-9,.]+")


def formula_like(text: str) -> bool:
    """Would a spreadsheet program take this text for a formula (or a DDE call)?"""
    if not _FORMULA_LIKE.match(text):
        return False
    return not _NUMBER.fullmatch(text.lstrip("\t\r\n "))


def defuse_text(value: Any) -> Any:
    """A CSV cell that cannot run: formula-like text gets a leading apostrophe (and its pipes
    escaped), as defusedcsv does for text starting with a trigger character, also when
    whitespace comes first (defusedcsv looks only at the first character)."""
    if isinstance(value, str) and value and value[0] in "\t\r\n " and formula_like(value):
        return "'" + value.replace("|", "\\|")
    return value


class _DefusingWriter:
    """defusedcsv's writer, with `defuse_text` applied to every cell first."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([defuse_text(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(buffer: IO[str]) -> _DefusingWriter:
    """The CSV writer of every export: formula injection defused in any text cell."""
    return _DefusingWriter(defused_csv.writer(buffer))


DATE_FIELDS = {"created": "created_at", "issued": "issued_at", "cancelled": "cancelled_at"}
DATE_FIELD_CHOICES = [("created", "Created"), ("issued", "Issued"), ("cancelled", "Cancelled")]

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ExportFilters:
    """Which orders: a date range on one of the order's dates, a partner, some statuses."""

    date_field: str = "created"  # created | issued | cancelled
    date_from: dt.date | None = None
    date_to: dt.date | None = None  # inclusive
    partner_pk: int | None = None
    statuses: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.date_field not in DATE_FIELDS:
            raise ValueError(f"date_field must be one of {sorted(DATE_FIELDS)}")

    def _range_q(self, column: str) -> Q:
        """`column` within the date range: whole days in the venue's time zone."""
        tz = get_venue().tzinfo
        q = Q()
        if self.date_from:
            q &= Q(**{f"{column}__gte": dt.datetime.combine(self.date_from, dt.time.min, tzinfo=tz)})
        if self.date_to:
            end = dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            q &= Q(**{f"{column}__lt": end})
        return q

    def order_q(self, prefix: str = "") -> Q:
        """The filter on orders; `prefix` reaches the order from another model ("order__").
        Live orders only: test data never reaches finance (API.md, "Test mode")."""
        column = prefix + DATE_FIELDS[self.date_field]
        q = Q(**{f"{prefix}livemode": True})
        if self.date_field != "created":
            q &= Q(**{f"{column}__isnull": False})
        q &= self._range_q(column)
        if self.partner_pk:
            q &= Q(**{f"{prefix}partner_id": self.partner_pk})
        if self.statuses:
            q &= Q(**{f"{prefix}status__in": list(self.statuses)})
        return q

    def deleted_q(self) -> Q:
        """The filter on tombstones: deleted within the date range (whichever order date the
        orders export uses), of the partner, with one of the statuses at deletion; live only."""
        q = Q(livemode=True) & self._range_q("deleted_at")
        if self.partner_pk:
            q &= Q(partner_id=self.partner_pk)
        if self.statuses:
            q &= Q(status__in=list(self.statuses))
        return q

    def slug(self, what: str | None = None) -> str:
        """For file names: orders-created-2026-01-01-2026-01-31, deleted-orders-2026-01-01-now."""
        start = self.date_from.isoformat() if self.date_from else "start"
        end = self.date_to.isoformat() if self.date_to else "now"
        return f"{what or 'orders-' + self.date_field}-{start}-{end}"


def orders_for_export(filters: ExportFilters) -> QuerySet[Order]:
    return Order.objects.filter(filters.order_q())


# --------------------------------------------------------------------------------------------
# Orders and their lines
# --------------------------------------------------------------------------------------------


class OrderLinesExporter:
    """One row per order line, with its order's header fields repeated."""

    identifier = "orderlines"
    verbose_name = "Orders and lines"
    columns = (
        "buyFromOrderReference",
        "sellToOrderReference",
        "partnerId",
        "status",
        "paymentReference",
        "createdAt",
        "issuedAt",
        "cancelledAt",
        "lineNumber",
        "itemId",
        "itemType",
        "quantity",
        "visitDate",
        "unitPrice",
        "lineTotal",
        "currency",
        "orderTotal",
    )
    # The query's columns, in `columns` order (order_id stands for buyFromOrderReference).
    _values = (
        "order_id",
        "order__sell_to_order_reference",
        "order__partner__partner_id",
        "order__status",
        "order__payment_reference",
        "order__created_at",
        "order__issued_at",
        "order__cancelled_at",
        "line_number",
        "item_code",
        "item_type",
        "quantity",
        "visit_date",
        "unit_price",
        "line_total",
        "order__currency",
        "order__total_amount",
    )
    _datetime_columns = (5, 6, 7)
    _date_columns = (12,)
    _money_columns = (13, 14, 16)
    _xlsx_widths = (14, 22, 16, 11, 18, 20, 20, 20, 6, 16, 13, 8, 11, 10, 10, 8, 11)
    sheet_title = "Orders"
    chunk_size = 2000
    csv_flush_bytes = 64 * 1024

    def __init__(self, filters: ExportFilters, *, chunk_size: int | None = None) -> None:
        self.filters = filters
        if chunk_size:
            self.chunk_size = chunk_size
        self.rows = 0  # data rows produced so far

    def queryset(self) -> QuerySet:
        return (
            OrderLine.objects.filter(self.filters.order_q(prefix="order__"))
            .order_by("order_id", "line_number")
            .values_list(*self._values)
        )

    def iterate_list(self) -> Iterator[list[Any]]:
        """The data rows as Python values (Decimal, date, aware datetime, str, int, None)."""
        self.rows = 0
        for row in self.queryset().iterator(chunk_size=self.chunk_size):
            out = list(row)
            out[0] = format_buy_from_reference(row[0])
            self.rows += 1
            yield out

    # ---- CSV --------------------------------------------------------------------------------

    def iter_csv(self) -> Iterator[bytes]:
        """The CSV document (UTF-8 with a BOM, for spreadsheet programs) in chunks."""
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(self.columns)
        datetime_columns = self._datetime_columns
        for row in self.iterate_list():
            for index in datetime_columns:
                row[index] = rfc3339(row[index])
            for index in self._date_columns:
                row[index] = row[index].isoformat()
            writer.writerow(row)
            if buffer.tell() >= self.csv_flush_bytes:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode("utf-8")

    # ---- XLSX -------------------------------------------------------------------------------

    def write_xlsx(self, fileobj: IO[bytes]) -> int:
        """Write the workbook to `fileobj` (a temporary file); returns the number of data rows."""
        kinds = [xlsx.AUTO] * len(self.columns)
        for indexes, kind in ((self._datetime_columns, xlsx.DATETIME), (self._date_columns, xlsx.DATE),
                              (self._money_columns, xlsx.MONEY)):
            for index in indexes:
                kinds[index] = kind
        with xlsx.SheetWriter(fileobj, title=self.sheet_title, kinds=kinds, widths=self._xlsx_widths,
                              formula_like=formula_like) as sheet:
            sheet.write_row(self.columns)
            for row in self.iterate_list():
                sheet.write_row(row)
        return self.rows


class DeletedOrdersExporter(OrderLinesExporter):
    """One row per deleted order (its tombstone): references, payment reference, amount, and
    who deleted it, when and why. Same CSV and XLSX treatment as the lines."""

    identifier = "deletedorders"
    verbose_name = "Deleted orders"
    sheet_title = "Deleted orders"
    columns = (
        "buyFromOrderReference",
        "sellToOrderReference",
        "partnerId",
        "orderId",
        "statusAtDeletion",
        "paymentReference",
        "currency",
        "orderTotal",
        "createdAt",
        "deletedAt",
        "deletedBy",
        "reason",
    )
    _values = (
        "buy_from_order_reference",
        "sell_to_order_reference",
        "partner__partner_id",
        "order_id",
        "status",
        "payment_reference",
        "currency",
        "total_amount",
        "created_at",
        "deleted_at",
        "actor",
        "reason",
    )
    _datetime_columns = (8, 9)
    _date_columns = ()
    _money_columns = (7,)
    _xlsx_widths = (14, 22, 16, 38, 11, 18, 8, 11, 20, 20, 22, 40)

    def queryset(self) -> QuerySet:
        return DeletedOrder.objects.filter(self.filters.deleted_q()).order_by("deleted_at", "id").values_list(
            *self._values
        )

    def iterate_list(self) -> Iterator[list[Any]]:
        self.rows = 0
        for row in self.queryset().iterator(chunk_size=self.chunk_size):
            out = list(row)
            out[3] = str(row[3])  # the orderId, as text
            self.rows += 1
            yield out


# --------------------------------------------------------------------------------------------
# Summary per partner and currency
# --------------------------------------------------------------------------------------------


@dataclass
class SummaryRow:
    partner_id: str
    partner_name: str
    currency: str
    orders: int = 0
    tickets: int = 0
    amount: Decimal = Decimal("0.00")


@dataclass
class Summary:
    rows: list[SummaryRow]
    totals: list[SummaryRow]  # one per currency, partner "all"


def export_summary(filters: ExportFilters) -> Summary:
    """Per partner and currency: orders, tickets and amount, for the export's filters. Two
    queries.

    - orders: the orders that match.
    - tickets: the people admitted by the ticket assets minted for the orders' current lines
      (a group ticket admitting 4 counts 4; a package counts its component tickets; coupons
      count nothing). Wallets of a cancelled order still count (they were sold, then cancelled:
      filter by status to tell them apart); an order in Error or in flight has none.
    - amount: the sum of the orders' totalAmount (priced at issuance; none for Error).
    """
    by_key: dict[tuple[str, str], SummaryRow] = {}
    orders = (
        Order.objects.filter(filters.order_q())
        .values("partner__partner_id", "partner__name", "currency")
        .annotate(n=Count("id"), amount=Sum("total_amount"))
        .order_by()
    )
    for entry in orders:
        key = (entry["partner__partner_id"], entry["currency"])
        by_key[key] = SummaryRow(
            partner_id=entry["partner__partner_id"],
            partner_name=entry["partner__name"],
            currency=entry["currency"],
            orders=entry["n"],
            amount=entry["amount"] or Decimal("0.00"),
        )
    tickets = (
        Asset.objects.filter(filters.order_q(prefix="wallet__order_link__order__"))
        .filter(asset_type=AssetType.TICKET, wallet__order_link__line__isnull=False)
        .values(partner_code=F("wallet__order_link__order__partner__partner_id"),
                currency=F("wallet__order_link__order__currency"))
        .annotate(admits=Sum("admits"))
        .order_by()
    )
    for entry in tickets:
        row = by_key.get((entry["partner_code"], entry["currency"]))
        if row is not None:
            row.tickets = entry["admits"] or 0
    rows = sorted(by_key.values(), key=lambda r: (r.partner_id, r.currency))
    totals: dict[str, SummaryRow] = {}
    for row in rows:
        total = totals.setdefault(row.currency, SummaryRow(partner_id="", partner_name="All partners",
                                                           currency=row.currency))
        total.orders += row.orders
        total.tickets += row.tickets
        total.amount += row.amount
    return Summary(rows=rows, totals=[totals[c] for c in sorted(totals)])


# --------------------------------------------------------------------------------------------
# Deleted orders, for the summary page
# --------------------------------------------------------------------------------------------


@dataclass
class DeletedSummary:
    rows: list[SummaryRow]  # per partner and currency: orders deleted, their amount
    latest: list[DeletedOrder]  # the most recent ones, newest first
    count: int


def deleted_summary(filters: ExportFilters, *, latest: int = 50) -> DeletedSummary:
    """The deleted orders matching the filters (by the day they were deleted): per partner and
    currency, how many and their amount, and the `latest` of them. Two queries."""
    tombstones = DeletedOrder.objects.filter(filters.deleted_q())
    per_partner = (
        tombstones.values("partner__partner_id", "partner__name", "currency")
        .annotate(n=Count("id"), amount=Sum("total_amount"))
        .order_by("partner__partner_id", "currency")
    )
    rows = [
        SummaryRow(partner_id=entry["partner__partner_id"], partner_name=entry["partner__name"],
                   currency=entry["currency"], orders=entry["n"], amount=entry["amount"] or Decimal("0.00"))
        for entry in per_partner
    ]
    shown = list(tombstones.select_related("partner").order_by("-deleted_at", "-id")[:latest]) if rows else []
    return DeletedSummary(rows=rows, latest=shown, count=sum(row.orders for row in rows))
