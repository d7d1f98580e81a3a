"""Issue 24 in the web UI (AppTest): the Corpora page opens on a table of the corpora with the
kinds of documents each holds, the upload field names the document types, and a cited part
(a slide's notes) is shown in the source viewer under its locator."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.services.ingesting import ingest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _pptx(path: Path) -> Path:
    from pptx import Presentation

    p = Presentation()
    slide = p.slides.add_slide(p.slide_layouts[1])
    slide.shapes.title.text = "Q3 review"
    slide.placeholders[1].text = "Revenue grew twelve percent"
    slide.notes_slide.notes_text_frame.text = "Say the launch slips to May"
    buf = io.BytesIO()
    p.save(buf)
    path.write_bytes(buf.getvalue())
    return path


def test_corpora_page_opens_on_a_table_with_document_kinds(tmp_path, scoutlens_home):
    folder = tmp_path / "docs"
    folder.mkdir()
    _pptx(folder / "review.pptx")
    (folder / "notes.txt").write_text("plain notes\n")
    ingest([folder], "deck")
    at = AppTest.from_file(str(ROOT / "ui" / "views" / "corpora_page.py"),
                           default_timeout=180).run()
    assert not at.exception
    table = at.dataframe[0].value
    row = table[table["corpus"] == "deck"].iloc[0]
    assert "slides 1" in row["documents"] and "text 1" in row["documents"]
    assert "Word (.docx)" in at.file_uploader[0].label and ".eml" in at.file_uploader[0].label


SOURCES_APP = """
import streamlit as st
from ui.sources_panel import show_sources
show_sources("deck", [{"id": "S2", "path": st.session_state["path"], "kind": "cited",
                       "verified": True, "part": "slide 1 (notes)",
                       "quote": "launch slips to May"}])
"""


def test_source_viewer_shows_the_cited_part_under_its_locator(tmp_path, scoutlens_home):
    folder = tmp_path / "docs"
    folder.mkdir()
    _pptx(folder / "review.pptx")
    report = ingest([folder], "deck")
    path = next(f.path for f in report.files if f.path.endswith("review.pptx"))
    at = AppTest.from_string(SOURCES_APP, default_timeout=120)
    at.session_state["path"] = path
    at.run()
    assert not at.exception
    # the label is Markdown with every sign escaped (a path is document-controlled): as shown
    assert re.sub(r"\\(.)", r"\1", at.expander[0].label).endswith("review.pptx slide 1 (notes)")
    shown = " ".join(m.value for m in at.markdown)
    assert "launch slips to May" in shown and "Revenue grew" not in shown
    assert any("slide 1 (notes)" in c.value for c in at.caption)
