"""A stored analysis written out: JSON (everything), CSV and XLSX (an extraction's table, with a
column naming the cells that did not check out), Markdown (a briefing or comparison with its
citations and coverage). Files are written atomically; a spreadsheet's cells never start a
formula (a value from a document is data)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from app.services.analysis.extract import flat
from common.errors import UserError
from common.files import atomic_write_bytes, atomic_write_text

FORMATS = (".json", ".csv", ".xlsx", ".md")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write(result: dict, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"--out: write {', '.join(FORMATS)}, not {path.name!r}")
    if not path.parent.is_dir():
        raise UserError(f"--out: the folder {path.parent} does not exist")
    if suffix == ".json":
        atomic_write_text(path, json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    elif suffix == ".md":
        atomic_write_text(path, markdown(result))
    else:
        if result.get("kind") != "extract":
            raise UserError(f"--out {path.name}: a table is an extraction's (this analysis is a "
                            f"{result.get('kind')}; write .json or .md)")
        records = flat(result["rows"], result["columns"])
        header = ["source", *result["columns"], "unchecked"]
        if suffix == ".csv":
            buf = io.StringIO()
            out = csv.DictWriter(buf, header)
            out.writeheader()
            out.writerows({k: _cell(v) for k, v in r.items()} for r in records)
            atomic_write_text(path, buf.getvalue())
        else:
            atomic_write_bytes(path, _xlsx(header, records))


def _cell(value):
    """A value a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _xlsx(header: list[str], records: list[dict]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "extraction"
    sheet.append(header)
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
    if result.get("guide"):
        lines += ["", "## Sources", ""] + [f"- **{p}**: {t}" for p, t in result["guide"].items()]
    if result.get("citations"):
        lines += ["", "## Citations", ""]
        for c in result["citations"]:
            mark = "checked" if c["verified"] else f"NOT CHECKED: {c.get('why', '')}"
            lines.append(f"- [{c['id']}] {c.get('path', '')} {c.get('lines', '')} ({mark})")
    return "\n".join(lines) + "\n"
