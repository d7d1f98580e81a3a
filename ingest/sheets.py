"""Spreadsheets (.xlsx, .xlsm, .xls, .ods, .csv, .tsv) read sheet by sheet into markdown tables,
in blocks of rows that each cite their A1 range ("Opex!A1:C100").

Values come from python-calamine (Rust; about 5x openpyxl's read-only mode on a 50,000-row
workbook): a formula gives its cached value, as the analyst saw it in Excel. Calamine does not
say which rows or columns are hidden, nor which formulas were never computed, so for .xlsx/.xlsm
the sheet XML is scanned for those (and for the sheet's real extent: calamine allocates the
whole bounding box of a sheet's cells, so two cells at A1 and XFD1048576 would abort the
process; such a sheet is streamed by openpyxl instead, up to the cell limit). Hidden sheets,
rows and columns are kept and marked in the text, so injection checks see them and no reader
takes them for visible content.

A file holds at most `max_cells` cells (MAX_CELLS by default): the rest is cut, flagged
("cut:Opex:rows 10001-") and said in the text. CSV/TSV stream row by row: a block is built as
rows are read, never the whole file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import PurePosixPath

from ingest.containers import container_flags, markdown_table, open_zip, read_part, safe_xml
from ingest.types import IngestError, Segment, StructuredRead

#: cells read from one file, all sheets together; the rest is cut and reported
MAX_CELLS = 1_000_000
#: characters kept of one cell; a longer cell is cut with a note
MAX_CELL_CHARS = 10_000
BLOCK_ROWS = 100
BLOCK_WORDS = 1_500
_SNIFF_BYTES = 64 * 1024
_CSV_FIELD_LIMIT = 64 * 1024**2  # csv's default (128 KB) would refuse a long cell outright
_MAX_COLS = 16_384
_MAX_ROWS = 1_048_576
#: calamine holds a sheet's whole bounding box in memory: up to this many times the cells
#: still allowed it is fast and bounded; beyond, the sheet is streamed (.xlsx) or left out
_EXTENT_FACTOR = 4

_OLE = b"\xd0\xcf\x11\xe0"
_ENCRYPTED_OLE = "EncryptionInfo".encode("utf-16-le")
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_ATTR = re.compile(rb'\b(\w+)="([^"]*)"')
_ROW_NUMBER = re.compile(rb'\br="(\d{1,9})"')  # more digits than Excel's rows: not a number
_ODS_TOKEN = re.compile(rb"<(/?)table:(table-row|table-cell|covered-table-cell|table-column|table)"
                        rb"(?=[\s/>])([^>]*?)(/?)>")
_ODS_NAME = re.compile(rb'\btable:name="([^"]*)"')
_ODS_HIDDEN = re.compile(rb'\btable:visibility="(?:collapse|filter)"')
_ODS_REPEAT = re.compile(rb'\btable:number-(?:rows|columns)-repeated="(\d{1,9})"')


def read_sheet(data: bytes, name: str, max_cells: int = MAX_CELLS) -> StructuredRead:
    """A spreadsheet's sheets as "part" segments of at most ~100 rows / ~1,500 words, each a
    markdown table under its header row, located by its A1 range; IngestError (one line) for a
    corrupt, encrypted or bomb-like file."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_delimited(data, name, suffix == ".tsv", max_cells)
    if suffix == ".xls":
        if data[:4] == _OLE and _ENCRYPTED_OLE in data[:1024 * 1024]:
            raise IngestError(f"{name}: password-protected (an encrypted workbook)")
        return _read_workbook(data, name, {}, [], max_cells)
    zf = open_zip(data, name)
    flags = container_flags(zf)
    if suffix in (".xlsx", ".xlsm"):
        return _read_workbook(data, name, _xlsx_layouts(zf, name), flags, max_cells, True)
    layouts = _ods_layouts(zf, name) if "content.xml" in zf.namelist() else {}
    _check_ods_extent(layouts, name, max_cells)
    return _read_workbook(data, name, layouts, flags, max_cells)


# ---------------------------------------------------------------- blocks of rows -> segments

@dataclass
class _Budget:
    """The cells a file may still give; `take` says whether a row fits."""

    left: int

    def take(self, n: int) -> bool:
        if n > self.left:
            self.left = 0
            return False
        self.left -= n
        return True


@dataclass
class _Writer:
    """Turns one sheet's rows into blocks: the header row (the first non-empty one) repeated on
    top of each block, blank rows dropped, trailing empty columns trimmed per block."""

    out: list[Segment]
    sheet: str | None  # None for CSV: the locator is the bare A1 range
    col0: int = 0  # 0-based column of the first cell in each row
    hidden_sheet: str = ""
    hidden_rows: set[int] = field(default_factory=set)
    hidden_cols: set[int] = field(default_factory=set)
    header: list[str] | None = None
    rows: list[list[str]] = field(default_factory=list)
    first: int = 0
    last: int = 0
    words: int = 0
    width: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, rownum: int, cells: list[str]) -> None:
        """One row (1-based number) of cell texts."""
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            return
        if rownum in self.hidden_rows:
            cells[0] = "[hidden row] " + cells[0]
        if self.header is None:
            self.header = [("[hidden column] " + c if self.col0 + i + 1 in self.hidden_cols
                            else c) for i, c in enumerate(cells)]
            self._start(rownum)
            self.width = len(cells)
            return
        if not self.rows and self.first == 0:
            self._start(rownum)
        self.rows.append(cells)
        self.last = rownum
        self.width = max(self.width, len(cells))
        self.words += len(" ".join(cells).split())
        if len(self.rows) >= BLOCK_ROWS or self.words >= BLOCK_WORDS:
            self.flush()

    def _start(self, rownum: int) -> None:
        self.first = self.last = rownum

    def note(self, text: str) -> None:
        self.notes.append(text)

    def flush(self) -> None:
        """Emits the pending block as one segment (a header alone, or notes alone, too)."""
        if self.header is None and not self.notes:
            return
        if self.header is None or self.first == 0:  # notes alone: where the next row would be
            if not self.notes:
                return
            text = f"# {self.sheet or 'table'}{self.hidden_sheet}\n\n"
            span = f"{_col(self.col0)}{self.last + 1}"
            loc = f"{_quote(self.sheet)}!{span}" if self.sheet else span
        else:
            width = max(self.width, 1)
            top = f"{_col(self.col0)}{self.first}"
            bottom = f"{_col(self.col0 + width - 1)}{self.last}"
            span = top if top == bottom else f"{top}:{bottom}"
            loc = f"{_quote(self.sheet)}!{span}" if self.sheet else span
            head = f"{self.sheet} ({span})" if self.sheet else span
            body = [_pad(self.header, width)] + [_pad(r, width) for r in self.rows]
            text = f"# {head}{self.hidden_sheet}\n\n" + markdown_table(body)
        if self.notes:
            text += "\n" + "\n".join(self.notes) + "\n"
        n = len(self.out) + 1
        self.out.append(Segment(order=n - 1, text=text, span_kind="part", start=n, end=n,
                                locator=loc))
        self.rows, self.words, self.first, self.notes = [], 0, 0, []
        self.width = len(self.header or [])


def _pad(cells: list[str], width: int) -> list[str]:
    return cells[:width] + [""] * (width - len(cells))


def _col(index: int) -> str:
    """0-based column index as its letters: 0 -> A, 27 -> AB."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _col_index(letters: bytes | str) -> int:
    """Column letters as a 1-based index: A -> 1, AB -> 28."""
    n = 0
    for ch in letters if isinstance(letters, str) else letters.decode("ascii"):
        n = n * 26 + ord(ch) - 64
    return n


def _quote(sheet: str | None) -> str:
    """A sheet name as Excel writes it in a reference: quoted when it has spaces or symbols."""
    if sheet and re.fullmatch(r"[A-Za-z_][\w.]*", sheet):
        return sheet
    return "'" + (sheet or "").replace("'", "''") + "'"


# ---------------------------------------------------------------- cell values

def cell_text(value: object) -> str:
    """A cell as an analyst reads it: dates ISO, floats without binary noise (0.1, not
    0.1000000000000001), booleans TRUE/FALSE, long text cut with a note."""
    kind = type(value)  # exact types first: this runs once per cell
    if kind is str:
        return value if len(value) <= MAX_CELL_CHARS else _cap(value)  # type: ignore[arg-type]
    if kind is float:
        return _number(value)  # type: ignore[arg-type]
    if kind is int:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "auto")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return _cap(str(value))


def _number(value: float) -> str:
    """The shortest text for the float, rounded to 15 digits when binary noise shows."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and -1e15 < value < 1e15:
        return str(int(value))
    text = repr(value)
    return text if len(text) < 17 else f"{value:.15g}"


def _cap(text: str) -> str:
    if len(text) <= MAX_CELL_CHARS:
        return text
    return (text[:MAX_CELL_CHARS] + f" [cell cut: {len(text):,} characters, the first "
            f"{MAX_CELL_CHARS:,} kept]")


# ---------------------------------------------------------------- workbooks

@dataclass
class _Layout:
    """What the .xlsx sheet XML says and calamine does not."""

    hidden_rows: set[int] = field(default_factory=set)
    hidden_cols: set[int] = field(default_factory=set)
    #: row -> column -> text (1-based) of cells calamine leaves blank: formulas with no
    #: cached value, error values (#DIV/0!)
    overrides: dict[int, dict[int, str]] = field(default_factory=dict)
    uncached: int = 0  # formulas with no cached value
    max_row: int = 0
    max_col: int = 0


def _read_workbook(data: bytes, name: str, layouts: dict[str, _Layout], flags: list[str],
                   max_cells: int, openpyxl_can: bool = False) -> StructuredRead:
    """Sheet by sheet through calamine, or openpyxl's stream (.xlsx) for a sheet whose extent
    calamine should not hold."""
    import python_calamine as pc

    book = _calamine(lambda: pc.CalamineWorkbook.from_filelike(io.BytesIO(data)), name)
    segments: list[Segment] = []
    budget = _Budget(max_cells)
    metas = _calamine(lambda: book.sheets_metadata, name)
    for meta in metas:
        sheet = meta.name
        hidden = meta.visible != pc.SheetVisibleEnum.Visible
        if hidden:
            flags.append(f"hidden-sheet:{sheet}")
        layout = layouts.get(sheet, _Layout())
        writer = _Writer(segments, sheet, hidden_sheet=" [hidden sheet]" if hidden else "",
                         hidden_rows=layout.hidden_rows, hidden_cols=layout.hidden_cols)
        if layout.hidden_rows and min(layout.hidden_rows) <= layout.max_row:
            flags.append(f"hidden-rows:{sheet}")
        if layout.hidden_cols and min(layout.hidden_cols) <= layout.max_col:
            flags.append(f"hidden-columns:{sheet}")
        if layout.uncached:
            flags.append(f"uncached-formulas:{sheet}")
        too_large = layout.max_row * layout.max_col > _EXTENT_FACTOR * max(budget.left, 1)
        if too_large and openpyxl_can:
            rows = _openpyxl_rows(data, name, sheet, layout, budget.left)
        else:
            rows = _calamine_rows(book, sheet, name, writer)
        if layout.overrides:
            rows = _rows_with_formulas(rows, layout, writer)
        _fill(writer, rows, budget, layout, flags)
        writer.flush()
    return StructuredRead(kind="sheet", segments=segments, flags=flags,
                          metadata={"sheets": str(len(metas))})


def _fill(writer: _Writer, rows: Iterable[tuple[int, list]], budget: _Budget, layout: _Layout,
          flags: list[str]) -> None:
    """Rows into the writer until the file's cell budget is spent; the cut is flagged and
    written where it happened."""
    for rownum, values in rows:
        if not budget.take(max(len(values), 1)):
            sheet = writer.sheet or "table"
            flags.append(f"cut:{sheet}:rows {rownum}-")
            writer.note(f"[cut: the file's limit of cells was reached; rows {rownum:,}- of "
                        f"{sheet} are not included]")
            return
        cells = [cell_text(v) for v in values]
        writer.add(rownum, _override(cells, layout.overrides[rownum])
                   if rownum in layout.overrides else cells)


def _override(cells: list[str], texts: dict[int, str]) -> list[str]:
    """The row's cells with what calamine left blank written in (an uncomputed formula, an
    error value), placed by column, beyond the sheet's range too."""
    for col, text in texts.items():
        cells.extend([""] * (col - len(cells)))
        if not cells[col - 1]:
            cells[col - 1] = text
    return cells


def _rows_with_formulas(rows: Iterable[tuple[int, list]], layout: _Layout,
                        writer: _Writer) -> Iterator[tuple[int, list]]:
    """Rows from column A (overrides are placed by their column) and, after the last row with
    a value, the rows that hold only overrides."""
    last = shift = 0
    for rownum, values in rows:
        if rownum == 1 or not last:
            shift, writer.col0 = writer.col0, 0
        last = rownum
        yield rownum, [""] * shift + list(values) if shift else values
    for rownum in sorted(r for r in layout.overrides if r > last):
        yield rownum, []


def _calamine_rows(book, sheet: str, name: str, writer: _Writer) -> Iterator[tuple[int, list]]:
    """calamine's rows with their 1-based numbers; iter_rows starts at row 1 but at the
    sheet's first used column."""
    data = _calamine(lambda: book.get_sheet_by_name(sheet), name)
    start = data.start
    writer.col0 = start[1] if start else 0
    for i, row in enumerate(data.iter_rows()):
        yield i + 1, row


def _openpyxl_rows(data: bytes, name: str, sheet: str, layout: _Layout,
                   cells_left: int) -> Iterator[tuple[int, list]]:
    """A sheet too large (or too sparse) for calamine's in-memory range, streamed up to one
    row past the cell budget so the cut is reported."""
    import openpyxl

    width = max(min(layout.max_col, _MAX_COLS), 1)
    last = min(layout.max_row, cells_left // width + 1)
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            ws = book[sheet]
            for i, row in enumerate(ws.iter_rows(min_row=1, max_row=last, max_col=width,
                                                 values_only=True)):
                yield i + 1, list(row)
        finally:
            book.close()
    except Exception as exc:  # noqa: BLE001 - openpyxl on a hostile file: any error, one line
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise IngestError(f"{name}: sheet {sheet!r} is not readable ({msg})") from None


def _calamine(call, name: str):
    """A calamine call with its errors (and Rust panics) as one-line IngestErrors."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - pyo3 panics derive from BaseException
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if type(exc).__name__ == "PasswordError" or "password" in msg.lower():
            raise IngestError(f"{name}: password-protected") from None
        raise IngestError(f"{name}: not a readable workbook (damaged, password-protected or "
                          f"a legacy format: {msg})") from None


# ---------------------------------------------------------------- .xlsx sheet XML

def _xlsx_layouts(zf: zipfile.ZipFile, name: str) -> dict[str, _Layout]:
    """Each sheet's hidden rows/columns, uncached formulas and real extent, by sheet name."""
    layouts: dict[str, _Layout] = {}
    for sheet, part in _sheet_parts(zf, name).items():
        try:
            layouts[sheet] = _scan_sheet(read_part(zf, part, name))
        except IngestError:
            continue  # a missing part: calamine says what is wrong with it
    return layouts


def _sheet_parts(zf: zipfile.ZipFile, name: str) -> dict[str, str]:
    """Sheet name -> its part path, from xl/workbook.xml and its relationships."""
    try:
        book = safe_xml(read_part(zf, "xl/workbook.xml", name), name)
        rels = safe_xml(read_part(zf, "xl/_rels/workbook.xml.rels", name), name)
    except IngestError:
        return {}
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    parts: dict[str, str] = {}
    for el in book.iter("{*}sheet"):
        target = targets.get(el.get(f"{{{_REL_NS}}}id"), "")
        if target:  # resolved as calamine does, so both read the same part
            path = target.lstrip("/") if target.startswith(("/", "xl/")) else "xl/" + target
            parts[el.get("name", "")] = path
    return parts


def _scan_sheet(xml: bytes) -> _Layout:
    """Hidden rows and columns, formulas with no cached value, and the cells' extent, read
    from the raw sheet XML with regular expressions run in C (findall, not a Python loop per
    cell: several times faster than a streaming parser on a large sheet; nothing is expanded,
    so entities cannot bite)."""
    prefix = _prefix(xml)
    pat = _patterns(prefix)
    layout = _Layout()
    for attrs in pat["col"].findall(xml, 0, max(xml.find(b"sheetData"), 0)):
        if _hidden(attrs):
            found = dict(_ATTR.findall(attrs))
            lo, hi = _int(found.get(b"min"), 1), _int(found.get(b"max"), 1)
            layout.hidden_cols.update(range(max(lo, 1), min(hi, _MAX_COLS) + 1))
    rows = pat["row"].findall(xml)
    numbers = [m.group(1) for m in map(_ROW_NUMBER.search, rows) if m]
    layout.max_row = max(len(rows), max(map(int, numbers), default=0))
    for attrs in filter(_hidden, rows):
        m = _ROW_NUMBER.search(attrs)
        if m and int(m.group(1)) <= _MAX_ROWS:  # a set of at most Excel's rows
            layout.hidden_rows.add(int(m.group(1)))
    refs = pat["cell"].findall(xml)
    layout.max_col = max((_col_index(c) for c in {c for c, _ in refs}), default=0)
    layout.max_row = max(layout.max_row, max((int(r) for r in {r for _, r in refs}), default=0))
    _scan_formulas(xml, prefix, layout)
    _scan_errors(xml, prefix, layout)
    return layout


def _prefix(xml: bytes) -> bytes:
    """The namespace prefix the sheet's elements carry ("x:" from some .NET writers), if any."""
    m = re.search(rb"<(\w+:)?worksheet\b", xml[:8192])
    return m.group(1) or b"" if m else b""


_PATTERNS: dict[bytes, dict[str, re.Pattern[bytes]]] = {}


def _patterns(prefix: bytes) -> dict[str, re.Pattern[bytes]]:
    """Patterns with the literal prefix, so the regex engine can skip to candidates fast."""
    if prefix not in _PATTERNS:
        p = re.escape(prefix)
        _PATTERNS[prefix] = {
            "row": re.compile(rb"<" + p + rb"row\b([^>]*)>"),
            "col": re.compile(rb"<" + p + rb"col\b([^>]*)>"),
            "cell": re.compile(rb"<" + p + rb'c\b[^>]*?\br="([A-Z]{1,3})(\d{1,9})"'),
            "formula": re.compile(rb"<" + p + rb"f\b[^>]*?(?:/>|>(.*?)</" + p + rb"f>)",
                                  re.S),
            "value": re.compile(rb"<" + p + rb"v\b[^>]*>[^<]"),
            "cell_end": re.compile(rb"</" + p + rb"c>"),
            "error": re.compile(rb"<" + p + rb"v>(#[A-Z0-9/!?.]{1,15})</" + p + rb"v>"),
        }
    return _PATTERNS[prefix]


def _hidden(attrs: bytes) -> bool:
    return b'hidden="1"' in attrs or b'hidden="true"' in attrs


def _int(raw: bytes | None, default: int) -> int:
    return int(raw) if raw and raw.isdigit() and len(raw) < 10 else default


def _scan_formulas(xml: bytes, prefix: bytes, layout: _Layout) -> None:
    """Formula cells whose cached <v> is missing or empty: never computed (a file written by
    a library, not by Excel), so their value is unknown, not blank."""
    pat = _patterns(prefix)
    for m in pat["formula"].finditer(xml):
        start = xml.rfind(b"<" + prefix + b"c ", 0, m.start())
        end = pat["cell_end"].search(xml, m.end())
        if start < 0 or end is None or pat["value"].search(xml, m.end(), end.start()):
            continue
        ref = pat["cell"].match(xml, start)
        if ref:
            formula = unescape((m.group(1) or b"").decode("utf-8", "replace"))[:200]
            row = layout.overrides.setdefault(int(ref.group(2)), {})
            row[_col_index(ref.group(1))] = ("[formula with no cached value"
                                             + (f": ={formula}]" if formula else "]"))
            layout.uncached += 1


def _scan_errors(xml: bytes, prefix: bytes, layout: _Layout) -> None:
    """Error cells (t="e": #DIV/0!, #REF!): calamine gives them as blanks, an analyst reads
    the error."""
    pat = _patterns(prefix)
    at = xml.find(b't="e"')
    while at >= 0:
        start = xml.rfind(b"<" + prefix + b"c ", 0, at)
        ref = pat["cell"].match(xml, start) if start >= 0 else None
        end = pat["cell_end"].search(xml, at)
        value = pat["error"].search(xml, at, end.start()) if ref and end else None
        if ref and value:
            row = layout.overrides.setdefault(int(ref.group(2)), {})
            row[_col_index(ref.group(1))] = value.group(1).decode("ascii", "replace")
        at = xml.find(b't="e"', at + 5)


# ---------------------------------------------------------------- .ods content.xml

def _ods_layouts(zf: zipfile.ZipFile, name: str) -> dict[str, _Layout]:
    """Each table's hidden rows and columns and the extent of its non-empty cells (repeated
    rows and cells counted as LibreOffice writes them: a trailing run of 1,048,576 empty rows
    is no extent; one non-empty cell at the grid's far corner is)."""
    try:
        xml = read_part(zf, "content.xml", name)
    except IngestError:
        return {}
    layouts: dict[str, _Layout] = {}
    layout, row, col, cols, first, repeat = _Layout(), 0, 0, 0, 0, 1
    content = hidden = False
    for close, tag, attrs, empty in _ODS_TOKEN.findall(xml):
        if tag == b"table" and not close:
            found = _ODS_NAME.search(attrs)
            layout, row, cols = _Layout(), 0, 0
            layouts[unescape(found.group(1).decode("utf-8", "replace")) if found else ""] = layout
        elif tag == b"table-column" and not close:
            n = _repeat(attrs)
            if _ODS_HIDDEN.search(attrs):
                layout.hidden_cols.update(range(cols + 1, min(cols + n, _MAX_COLS) + 1))
            cols += n
        elif tag == b"table-row" and not close:
            first, repeat, col, content = row + 1, _repeat(attrs), 0, False
            hidden = bool(_ODS_HIDDEN.search(attrs))
            row += repeat
        if (tag == b"table-row" and (close or empty)) and content:
            layout.max_row = max(layout.max_row, first + repeat - 1)
            if hidden:
                layout.hidden_rows.update(range(first, first + min(repeat, 1 << 20)))
        elif tag in (b"table-cell", b"covered-table-cell") and not close:
            n = _repeat(attrs)
            if not empty or b"value-type=" in attrs:
                layout.max_col, content = max(layout.max_col, col + n), True
            col += n
    return layouts


def _repeat(attrs: bytes) -> int:
    found = _ODS_REPEAT.search(attrs)
    return min(int(found.group(1)), 1 << 24) if found else 1


def _check_ods_extent(layouts: dict[str, _Layout], name: str, max_cells: int) -> None:
    """calamine expands every table of an .ods when it opens the file (16 million cells: a
    gigabyte), so a table whose cells span far more than the cell limit refuses the file."""
    for sheet, layout in layouts.items():
        if layout.max_row * layout.max_col > _EXTENT_FACTOR * max_cells:
            raise IngestError(f"{name}: sheet {sheet!r} spans {layout.max_row:,} rows x "
                              f"{layout.max_col:,} columns, over the limit of "
                              f"{max_cells:,} cells")


# ---------------------------------------------------------------- CSV / TSV

def _read_delimited(data: bytes, name: str, tab: bool, max_cells: int) -> StructuredRead:
    """CSV/TSV streamed row by row; the dialect is sniffed (CSV only) from a bounded sample."""
    encoding = _encoding(data)
    dialect = csv.excel_tab if tab else _sniff(data[:_SNIFF_BYTES].decode(encoding, "replace"))
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    text = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="replace", newline="")
    segments: list[Segment] = []
    flags: list[str] = []
    writer = _Writer(segments, None)
    try:
        _fill(writer, enumerate(csv.reader(text, dialect), 1), _Budget(max_cells), _Layout(),
              flags)
    except csv.Error as exc:
        raise IngestError(f"{name}: not a readable CSV file ({exc})") from None
    writer.flush()
    flags = [f.replace("cut:table:", "cut:") for f in flags]
    meta = {"encoding": "utf-8" if encoding == "utf-8-sig" else encoding}
    if encoding == "latin-1":
        flags.append("not-utf8")
    return StructuredRead(kind="sheet", segments=segments, flags=flags, metadata=meta)


def _encoding(data: bytes) -> str:
    """utf-8 (a BOM skipped) when every byte decodes as UTF-8, else latin-1; checked in
    chunks, so a large file is never copied whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for i in range(0, len(data), 1 << 20):
            decoder.decode(view[i:i + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig"


def _sniff(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """The sample's dialect among the usual delimiters; plain CSV when the sniffer cannot say."""
    cut = sample.rfind("\n")
    try:
        return csv.Sniffer().sniff(sample[:cut] if cut > 0 else sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel
