"""A stored analysis written out: JSON (everything), CSV and XLSX (an extraction's table, with a
column naming the cells that did not check out), Markdown (a briefing or comparison with its
citations and coverage). Files are written atomically; a spreadsheet's cells never start a
formula (a value from a document is data)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from app.services.analysis.extract import flat
from common.errors import UserError
from common.files import atomic_write_bytes, atomic_write_text

FORMATS = (".json", ".csv", ".xlsx", ".md")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def check(path: Path, kind: str) -> None:
    """Refuse a file `write` could not write, before any model call is made."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"--out: write {', '.join(FORMATS)}, not {path.name!r}")
    if not path.parent.is_dir():
        raise UserError(f"--out: the folder {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"--out: {path} is a folder")
    if suffix in (".csv", ".xlsx") and kind != "extract":
        raise UserError(f"--out {path.name}: a table is an extraction's (this analysis is a "
                        f"{kind}; write .json or .md)")


def write(result: dict, path: Path) -> None:
    check(path, result.get("kind", ""))
    suffix = path.suffix.lower()
    if suffix == ".json":
        atomic_write_text(path, json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    elif suffix == ".md":
        atomic_write_text(path, markdown(result))
    else:
        records = flat(result["rows"], result["columns"])
        header = ["source", *result["columns"], "unchecked"]
        if suffix == ".csv":
            buf = io.StringIO()
            out = csv.writer(buf)
            out.writerow([_cell(h) for h in header])
            out.writerows([_cell(r.get(h)) for h in header] for r in records)
            atomic_write_text(path, buf.getvalue())
        else:
            atomic_write_bytes(path, _xlsx(header, records))


def _cell(value):
    """A value a spreadsheet shows as text, never runs as a formula; without the control
    characters a workbook cannot hold (an escape sequence copied from a document)."""
    if not isinstance(value, str):
        return value
    value = CONTROL.sub("\ufffd", value)
    return "'" + value if value.startswith(FORMULA_START) else value


def _xlsx(header: list[str], records: list[dict]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "extraction"
    sheet.append([_cell(h) for h in header])
    for r in records:
        sheet.append([_cell(r.get(h)) for h in header])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def markdown(result: dict) -> str:
    """A briefing or comparison (or an extraction as a table) with its coverage and each
    citation, checked or not."""
    lines = [f"# {result['kind']} of {result['corpus']}", "",
             f"Coverage: {result['sources_read']} of {result['sources']} sources read "
             f"({result['coverage']:.0%})."]
    lines += [f"- not read whole: {c['path']} ({c['why']})" for c in result.get("cut", [])]
    if result.get("text"):
        lines += ["", result["text"]]
    if result.get("rows"):
        header = ["source", *result["columns"]]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in result["rows"]:
            cells = [r["source"]] + [
                (c["value"] or "") + ("" if c["verified"] or not c["found"] else " (unchecked)")
                if c["found"] else "—" for c in (r["cells"][n] for n in result["columns"])]
            lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ")
                                             for x in cells) + " |")
    if result.get("changes"):
        lines += ["", "## Changes", ""] + [f"{n}. {line}" for n, line in
                                           enumerate(change_lines(result["changes"]), 1)]
    if result.get("guide"):
        lines += ["", "## Sources", ""] + [f"- **{p}**: {t}" for p, t in result["guide"].items()]
    if result.get("citations"):
        lines += ["", "## Citations", ""]
        for c in result["citations"]:
            mark = "checked" if c["verified"] else f"NOT CHECKED: {c.get('why', '')}"
            lines.append(f"- [{c['id']}] {c.get('path', '')} {c.get('lines', '')} ({mark})")
    return "\n".join(lines) + "\n"


def change_lines(changes: list[dict]) -> list[str]:
    """Each exact change on one line: what, where on both sides (`change N` is what the
    explanation's citations name)."""
    out = []
    for c in changes:
        sides = []
        for key in ("left", "right"):
            where = c.get(key)
            if where is None:
                sides.append(f"{key}: none")
                continue
            lines = where.get("lines")
            span = "" if not lines else (f" L{lines[0]}-L{lines[1]}" if lines[1] >= lines[0]
                                         else f" before L{lines[0]}")
            sides.append(f"{key}: {where['name']}:{where['path']}{span}")
        out.append(f"{c['op']} {c['path']} ({'; '.join(sides)})")
    return out
