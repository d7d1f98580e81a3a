"""The CLI names a structured document's part wherever it shows where a hit or a source is:
`search`'s and `ask --dry-run`'s "where" column carry the slide, the sheet range, the section."""

from __future__ import annotations

import docx
import openpyxl
import pptx
from helpers import db_cli


def _analyst_folder(root):
    root.mkdir()
    d = docx.Document()
    d.add_heading("Renewal", 1)
    d.add_paragraph("The lease renews for twenty-four months unless cancelled in writing.")
    d.save(root / "lease.docx")
    deck = pptx.Presentation()
    s = deck.slides.add_slide(deck.slide_layouts[1])
    s.shapes.title.text = "Quarterly review"
    s.notes_slide.notes_text_frame.text = "Mention that Lisbon missed its churn target."
    deck.save(root / "review.pptx")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Opex"
    ws.append(["Office", "Travel"])
    ws.append(["Porto", 12000])
    wb.save(root / "budget.xlsx")
    return root


def test_search_and_dry_run_show_the_part(tmp_path, bundled_model):
    home = tmp_path / "home"
    folder = _analyst_folder(tmp_path / "docs")
    assert db_cli("ingest", str(folder), "--corpus", "docs", home=home).returncode == 0

    found = db_cli("search", "docs", "Lisbon churn target", home=home)
    assert found.returncode == 0, found.stderr
    assert "slide 1 (notes)" in found.stdout

    plan = db_cli("ask", "docs", "What renews in the lease?", "--dry-run", home=home)
    assert plan.returncode == 0, plan.stderr
    for part in ("§1 Renewal", "Opex!A1:B2", "slide 1 (notes)"):
        assert part in plan.stdout, (part, plan.stdout)
