"""A stored analysis (its to_json dict) shown so it can be checked: coverage first, then the
briefing with its citations, the per-source guide, the extraction's table, the comparison's
changes, and its downloads. Every value a document controls (a path, a cell, a diff line, a
guide line) is data: shown escaped or in a table, never as Markdown or HTML."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from app.services.access import Who
from app.services.analysis.export import markdown, write
from app.services.analysis.extract import flat
from app.services.analysis.store import analyses
from ui.render import download_link, md_plain, safe_answer
from ui.sources_panel import show_sources

MAX_CITATIONS_SHOWN = 20  # drawn one by one; the rest are listed in a table
UNCHECKED = "⚠ "  # a cell whose citation did not check out


def show_coverage(data: dict) -> None:
    """How much of the corpus the result read: every source, or exactly what was cut and why."""
    read, total = data.get("sources_read", 0), data.get("sources", 0)
    c1, c2, c3 = st.columns(3)
    c1.metric("Coverage", f"{data.get('coverage', 0):.0%}")
    c2.metric("Sources read", f"{read:,} of {total:,}")
    c3.metric("Model calls", f"{data.get('calls', 0):,}",
              help=f"{data.get('resumed', 0)} taken from an interrupted run; "
                   f"{data.get('levels', 0)} reduce levels")
    cut = data.get("cut") or []
    if cut:
        st.warning(f"{len(cut)} of {total:,} sources were not read whole: see why below.")
        st.dataframe([{"source": c.get("path", ""), "why": c.get("why", "")} for c in cut],
                     width="stretch", hide_index=True)
    else:
        st.caption(f"Every source was read: {read:,} of {total:,}.")
    for note in data.get("notes") or []:
        st.caption(md_plain(note))


def show_guide(guide: dict[str, str]) -> None:
    """The per-source guide: a few sentences per source and questions worth asking."""
    for path, line in guide.items():
        st.markdown(f"- **{md_plain(path)}**: {md_plain(line)}")


def show_latest_guide(corpus: str, person: Who) -> None:
    """On a corpus's page: the per-source guide of this person's newest finished briefing of
    it, when there is one (made on the Analyze page)."""
    briefs = [a for a in analyses(corpus=corpus, who=person)
              if a.kind == "brief" and a.status == "done" and (a.result or {}).get("guide")]
    if not briefs:
        return
    latest = briefs[0]
    with st.expander(f"Guide to the sources (briefing {latest.analysis_id}, "
                     f"{latest.created_at})"):
        st.caption("What each source holds and questions worth asking, from the newest "
                   "briefing on the Analyze page.")
        show_guide(latest.result["guide"])


def extraction_rows(data: dict) -> list[dict]:
    """The table as shown: a not-found cell empty, an unchecked one marked, and a column saying
    which cells did not check out and why. Every value is text (a model may answer a number in
    one row and words in the next; a column keeps one type)."""
    records = flat(data.get("rows") or [], data.get("columns") or [])
    for record, row in zip(records, data.get("rows") or [], strict=True):
        for name in data["columns"]:
            cell = row["cells"][name]
            value = record[name]
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if not cell["found"]:
                record[name] = None
            else:
                record[name] = (UNCHECKED if not cell["verified"] else "") + text
    return records


def _citations(data: dict) -> None:
    cites = data.get("citations") or []
    if not cites:
        return
    st.markdown(f"**Citations**: {data.get('citations_verified', 0)} of {len(cites)} checked "
                "against the corpus")
    show_sources(data["corpus"], cites[:MAX_CITATIONS_SHOWN], data.get("text", ""))
    if len(cites) > MAX_CITATIONS_SHOWN:
        st.dataframe([{"id": c.get("id"), "source": c.get("path"), "checked": c.get("verified"),
                       "why": c.get("why", "")} for c in cites[MAX_CITATIONS_SHOWN:]],
                     width="stretch", hide_index=True)


def _changes(changes: list[dict]) -> None:
    def where(side: dict | None) -> str:
        if side is None:
            return "(no such file)"
        lines = side.get("lines")
        return f"{side['name']}:{side['path']}" + (f" L{lines[0]}-{lines[1]}" if lines else "")

    st.markdown(f"**Changes** ({len(changes)}), computed exactly before the model read them")
    st.dataframe([{"change": c["op"], "left": where(c.get("left")),
                   "right": where(c.get("right")), "before": c.get("before", ""),
                   "after": c.get("after", "")} for c in changes],
                 width="stretch", hide_index=True)


def downloads(data: dict) -> None:
    """JSON and Markdown always, CSV and XLSX for an extraction; each link carries its own
    bytes (ui.render.download_link: no /media URL anyone else could fetch)."""
    stem = f"analysis-{data['analysis_id']}"
    links = [download_link(json.dumps(data, ensure_ascii=False, indent=1), f"{stem}.json",
                           "Download JSON", "application/json"),
             download_link(markdown(data), f"{stem}.md", "Download Markdown", "text/markdown")]
    if data.get("kind") == "extract":
        with tempfile.TemporaryDirectory(prefix="scoutlens-export-") as tmp:
            for suffix, mime in ((".csv", "text/csv"), (".xlsx", "application/vnd."
                                 "openxmlformats-officedocument.spreadsheetml.sheet")):
                path = Path(tmp) / f"{stem}{suffix}"
                write(data, path)
                links.append(download_link(path.read_bytes(), path.name,
                                           f"Download {suffix[1:].upper()}", mime))
    st.markdown(" · ".join(links), unsafe_allow_html=True)


def show_analysis(data: dict) -> None:
    """The whole result: coverage first, then what the analysis made, then its downloads."""
    st.caption(f"{md_plain(data['kind'])} of {md_plain(data['corpus'])} · analysis "
               f"{md_plain(data['analysis_id'])}")
    show_coverage(data)
    if data.get("text"):
        st.markdown(safe_answer(data["text"]))
    if data.get("rows"):
        st.markdown(f"**One row per source** ({len(data['rows'])}): {UNCHECKED.strip()} marks "
                    "a cell whose citation did not check out; an empty cell was not found")
        st.dataframe(extraction_rows(data), width="stretch", hide_index=True)
    elif data.get("kind") == "extract":
        st.info("No rows: the model found none of the fields.")
    if data.get("changes"):
        _changes(data["changes"])
    _citations(data)
    if data.get("guide"):
        with st.expander(f"Guide to the sources ({len(data['guide'])})", expanded=True):
            show_guide(data["guide"])
    downloads(data)
