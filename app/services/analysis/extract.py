"""An extraction's answers made into a table: one row per source, each cell with its value,
the place it cites and whether that place holds it. A value the model did not give stays empty
and marked `found: false`; a value its cited place does not hold is kept but flagged
(`verified: false`, with why): nothing is filled in that the documents do not say."""

from __future__ import annotations

import json
import re

from app.services.citations import ContextSource

CITE_PLACE = re.compile(r"S\d+\s*[:,]?\s*(?:L|lines?\s*|p(?:age|\.)?\s*)?\d", re.I)
CITE = re.compile(r"S(\d+)(?:\s*[:,]?\s*(?:L|lines?\s*)?(\d+)(?:\s*[-–]\s*L?(\d+))?"
                  r"|\s*[:,]?\s*p(?:age|\.)?\s*(\d+))?", re.IGNORECASE)


def rows_of(outputs: list[str], parts_sources: list[list[ContextSource]], names: list[str],
            paths: list[str], cut_off: set[int] = frozenset(),
            not_read: dict[str, str] | None = None) -> list[dict]:
    """One row per path (corpus order): the first answer found for each field across the
    parts a source was split over. A cell left empty says why: not in the source, the part's
    answer stopped at max_tokens (`cut_off`: those parts' positions) or had no readable rows,
    or the source was not read (`not_read`: path -> why)."""
    rows = {p: {"source": p, "cells": {n: _empty() for n in names}} for p in paths}
    for path, why in (not_read or {}).items():
        rows.setdefault(path, {"source": path, "cells": {
            n: _empty(f"not read: {why}") for n in names}})
    trouble: dict[str, str] = {}
    for position, (text, sources) in enumerate(zip(outputs, parts_sources, strict=True)):
        by_id = {s.id: s for s in sources}
        objects = list(_objects(text))
        why = ("the model's answer for this part stopped at --max-tokens before it"
               if position in cut_off else "" if objects
               else "the model's answer for this part had no readable rows")
        if why:
            for s in sources:
                trouble.setdefault(s.path, why)
        for obj in objects:
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
    for path, why in trouble.items():
        for cell in rows[path]["cells"].values() if path in rows else ():
            if not cell["found"]:
                cell["why"] = why
    return [rows[p] for p in paths] + [r for p, r in rows.items() if p not in set(paths)]


def _empty(why: str = "not found in the source") -> dict:
    return {"value": None, "cite": None, "found": False, "verified": False, "why": why}


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
    if place is not None and not _holds(place, value, whole=not CITE_PLACE.search(str(cite))):
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


def _holds(place: str, value: str, whole: bool) -> bool:
    """Whether the cited text holds the value; cited as a whole source (no lines or page),
    only as a word of its own and not a letter or two (`e` is in every source)."""
    v, text = _fold(value), _fold(place)
    if not whole:
        return v in text
    return len(v) > 2 and re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text) is not None


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
