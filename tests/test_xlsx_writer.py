"""The finance exports' streaming XLSX writer (channel_manager/orders/xlsx.py), read back with
openpyxl as a spreadsheet program would read it."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from decimal import Decimal

from openpyxl import load_workbook
from openpyxl.utils.escape import unescape

from channel_manager.orders import xlsx
from channel_manager.orders.exports import formula_like

KINDS = [xlsx.AUTO, xlsx.AUTO, xlsx.DATETIME, xlsx.DATE, xlsx.MONEY]


def written(*rows, title="Orders") -> bytes:
    out = io.BytesIO()
    with xlsx.SheetWriter(out, title=title, kinds=KINDS, widths=(10, 12), formula_like=formula_like) as sheet:
        sheet.write_row(["text", "number", "at", "day", "amount"])
        for row in rows:
            sheet.write_row(row)
    return out.getvalue()


def read(data: bytes):
    return load_workbook(io.BytesIO(data)).active


def test_values_come_back_with_their_types_and_formats():
    at = dt.datetime(2026, 11, 30, 8, 15, 30, tzinfo=dt.UTC)
    sheet = read(written(["Ada", 7, at, dt.date(2026, 12, 24), Decimal("1234.50")]))
    assert [cell.value for cell in sheet[1]] == ["text", "number", "at", "day", "amount"]
    text, number, when, day, amount = sheet[2]
    assert (text.value, number.value) == ("Ada", 7)
    assert when.value == dt.datetime(2026, 11, 30, 8, 15, 30) and when.is_date
    assert day.value == dt.datetime(2026, 12, 24) and day.number_format == "yyyy-mm-dd"
    assert amount.value == 1234.5 and amount.data_type == "n" and amount.number_format == "#,##0.00"
    assert sheet.freeze_panes == "A2" and sheet.column_dimensions["B"].width == 12


def test_none_is_an_empty_cell_and_an_exponent_decimal_a_plain_number():
    sheet = read(written([None, Decimal("1E+2"), None, None, Decimal("0.00")]))
    assert [cell.value for cell in sheet[2]] == [None, 100, None, None, 0]


def test_text_stays_text_as_it_was():
    texts = ["=1+2", "#N/A", "  padded ", "a\r\nb", "_x0041_ literal", "<r><t>x</t></r>", 'quote " & <tag>', "12"]
    data = written(*[[text, None, None, None, None] for text in texts])
    assert "<f>" not in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    cells = [row[0] for row in read(data).iter_rows(min_row=2)]
    assert [unescape(cell.value) for cell in cells] == texts
    assert all(cell.data_type == "s" for cell in cells)
    assert [cell.quotePrefix for cell in cells] == [True, False, False, False, False, False, False, False]


def test_characters_xml_cannot_hold_are_removed():
    sheet = read(written(["BAD\x01REF\x0b", None, None, None, None]))
    assert sheet["A2"].value == "BADREF"


def test_the_sheet_is_named_within_excels_limit():
    assert read(written(title="Deleted orders & more, a title longer than Excel allows")).title == (
        "Deleted orders & more, a title "
    )
