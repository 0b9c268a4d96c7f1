"""The numbers as CSV: one row per number, for a spreadsheet or a script.

`hub-receiver export numbers` and the dashboard's `GET /ui/export.csv` both stream
`number_csv`, which reads only the numbers read model (`records.list_numbers`), page by page.

The spreadsheet form (the default) opens in Excel and LibreOffice as it is: UTF-8 with a BOM
(Excel reads a CSV without one in the machine's legacy code page), RFC 4180 quoting by the
`csv` module (CRLF line ends; a field holding a comma, quote, CR or LF is quoted, quotes
doubled), and a guard against formula injection (OWASP, "CSV Injection"): a client names
itself, so a name like `=HYPERLINK("http://evil.example","Click")` must stay text. A cell
starting with one of `= + - @` tab or CR gets one leading `'`, which both programs read as
"this is text"; an E.164 number `+4915123456789` becomes `'+4915123456789` and shows in full
instead of as 4.91512E+12. The guard is reversible: a cell that already starts with `'`
followed by `'` or one of those characters gets one more `'`, so a script strips exactly one
leading `'` wherever the rest starts with `' = + - @` tab or CR (`unguard_cell`). The plain
form (`spreadsheet=False`) is for scripts: no BOM, no guard, the same quoting.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from receiver.ops.records import Filters, Window, list_numbers
from receiver.services import Services

COLUMNS = (
    "Company legal name",
    "WhatsApp number",
    "Contact email",
    "Message on behalf",
    "Meta business verification",
    "Number registration",
    "Hosting platform type",
    "Status",
    "Status reason",
    "Health",
    "Balance",
    "Client ID",
    "Channel ID",
)
PAGE_SIZE = 500
BOM = "\ufeff"
# What a spreadsheet may take for the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_GUARDED_AFTER_QUOTE = (GUARD, *FORMULA_STARTS)


def guard_cell(value: str) -> str:
    """`value` as a spreadsheet must read it: text, never a formula (see the module doc)."""
    if value.startswith(FORMULA_STARTS) or (
        value.startswith(GUARD) and value[1:].startswith(_GUARDED_AFTER_QUOTE)
    ):
        return GUARD + value
    return value


def unguard_cell(cell: str) -> str:
    """The value `guard_cell` was given: one leading `'` off where the rest would need it."""
    if cell.startswith(GUARD) and cell[1:].startswith(_GUARDED_AFTER_QUOTE):
        return cell[1:]
    return cell


def _text(value: object) -> str:
    return "" if value is None else str(value)


def number_row(item: Mapping[str, Any]) -> list[str]:
    """A `list_numbers` item as the cells of COLUMNS, as stored (empty where unknown)."""
    balance = item.get("balance")
    return [
        _text(item.get("organisation") or item.get("client_name")),
        _text(item.get("phone_number")),
        _text(item.get("contact_email")),
        _text(item.get("message_on_behalf")),
        _text(item.get("business_verification")),
        _text(item.get("registration")),
        _text(item.get("hosting_platform_type")),
        _text(item.get("status")),
        _text(item.get("status_why")),
        _text(item.get("health")),
        # The decimal text 360dialog sent, kept exact (not rounded to cents), and its currency.
        "" if balance is None else f"{balance} {_text(item.get('currency'))}".rstrip(),
        _text(item.get("client_id")),
        _text(item.get("id")),
    ]


def csv_lines(rows: Iterable[Sequence[str]], *, spreadsheet: bool) -> str:
    """Rows as RFC 4180 records (CRLF), each cell guarded in the spreadsheet form."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for row in rows:
        writer.writerow([guard_cell(cell) for cell in row] if spreadsheet else row)
    return buffer.getvalue()


async def number_csv(
    services: Services, *, spreadsheet: bool = True, page_size: int = PAGE_SIZE
) -> AsyncIterator[str]:
    """Yield the export: (BOM and) the header, then one chunk per page of numbers by id."""
    page = await list_numbers(services, filters=Filters(), window=Window(limit=page_size))
    # The first page is read before anything is yielded: a database that is down fails the
    # export before a byte of it is written (an HTTP response can still be an error).
    yield (BOM if spreadsheet else "") + csv_lines([COLUMNS], spreadsheet=False)
    while True:
        if page.items:
            yield csv_lines((number_row(item) for item in page.items), spreadsheet=spreadsheet)
        if page.next_cursor is None:
            return
        window = Window(limit=page_size, cursor=page.next_cursor)
        page = await list_numbers(services, filters=Filters(), window=window)
