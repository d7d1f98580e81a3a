"""An extraction's answers made into a table: one row per source, each cell with its value,
the place it cites and whether that place holds it. A value the model did not give stays empty
and marked `found: false`; a value its cited place does not hold is kept but flagged
(`verified: false`, with why): nothing is filled in that the documents do not say."""

from __future__ import annotations

import json
import re

from app.services.citations import ContextSource

CITE = re.compile(r"S(\d+)(?:\s*[:,]?\s*(?:L|lines?\s*)?(\d+)(?:\s*[-–]\s*L?(\d+))?"
                  r"|\s*[:,]?\s*p(?:age|\.)?\s*(\d+))?", re.IGNORECASE)


def rows_of(outputs: list[str], parts_sources: list[list[ContextSource]], names: list[str],
            paths: list[str]) -> list[dict]:
    """One row per path (corpus order): the first answer found for each field across the
    parts a source was split over."""
    rows = {p: {"source": p, "cells": {n: _empty() for n in names}} for p in paths}
    for text, sources in zip(outputs, parts_sources, strict=True):
        by_id = {s.id: s for s in sources}
        for obj in _objects(text):
            source = by_id.get(str(obj.get("source", "")).strip("[] "))
            if source is None or source.path not in rows:
                continue
            cells = rows[source.path]["cells"]
            for name in names:
                if cells[name]["found"]:
                    continue
                cell = _cell(obj.get(name), sources, source)
                if cell["found"]:
                    cells[name] = cell
    return list(rows.values())


def _empty() -> dict:
    return {"value": None, "cite": None, "found": False, "verified": False,
            "why": "not found in the source"}


def _objects(text: str):
    """The JSON objects of the answer, one per line (a broken line is skipped, not guessed)."""
    for line in text.splitlines():
        line = line.strip().strip(",")
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def _cell(raw, sources: list[ContextSource], row_source: ContextSource) -> dict:
    """A cell from the model's `{"value": ..., "cite": ...}` (or a bare value), checked."""
    value, cite = (raw.get("value"), raw.get("cite")) if isinstance(raw, dict) else (raw, None)
    if value is None or (isinstance(value, str) and not value.strip()) \
            or isinstance(value, (dict, list)):
        return _empty()
    value = str(value).strip()[:2000]
    place, why = _place(str(cite or ""), sources, row_source)
    if place is not None and _fold(value) not in _fold(place):
        why = "the cited place does not hold this value"
    return {"value": value, "cite": str(cite)[:100] if cite else None, "found": True,
            "verified": not why, "why": why}


def _place(cite: str, sources: list[ContextSource],
           row_source: ContextSource) -> tuple[str | None, str]:
    """The text a citation names (its lines or page of its source), or why it names none."""
    m = CITE.search(cite)
    if not cite or m is None:
        return None, "no citation"
    sid = f"S{m.group(1)}"
    parts = [s for s in sources if s.id == sid]
    if not parts:
        return None, f"{sid} is not a source of this part"
    if parts[0].path != row_source.path:
        return None, f"{sid} is another source than the row's"
    first, last, page = m.group(2), m.group(3) or m.group(2), m.group(4)
    if page is not None:
        match = [p for p in parts if p.page == int(page)]
        return (match[0].text, "") if match else (None, f"page {page} was not read")
    text = "\n".join(p.text for p in parts)
    if first is None:
        return text, ""
    a, b = int(first), int(last)
    for p in parts:
        if p.line_start is not None and p.line_start <= a <= b <= (p.line_end or a):
            lines = p.text.split("\n")
            return "\n".join(lines[a - p.line_start:b - p.line_start + 1]), ""
    return None, f"lines {a}-{b} are not in {sid}"


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def flat(rows: list[dict], names: list[str]) -> list[dict]:
    """Rows as flat records (CSV, XLSX): the source, each field's value, and a column saying
    which cells did not check out or were not found."""
    out = []
    for r in rows:
        record = {"source": r["source"]}
        flags = []
        for n in names:
            c = r["cells"][n]
            record[n] = c["value"] if c["found"] else ""
            if not c["found"]:
                flags.append(f"{n}: not found")
            elif not c["verified"]:
                flags.append(f"{n}: {c['why']}")
        record["unchecked"] = "; ".join(flags)
        out.append(record)
    return out
