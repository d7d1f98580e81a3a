"""A key no text layer holds is still a key on the page's picture: a screenshot pasted into a
PDF is OCRed when the page is drawn and its secret boxed; a key hyphenated where its line broke
is found and redacted in text and picture alike. Real PDFs (PyMuPDF), read back by tesseract."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from ingest import secrets
from ingest.ocr import tesseract_available
from ui.render import pdf_page_png

GITHUB = "ghp_" + "Zx9" * 12


def _read_back(png: bytes) -> str:
    """What OCR reads on a drawn page: what a reader of the picture could copy."""
    doc = pymupdf.open()
    pix = pymupdf.Pixmap(png)
    page = doc.new_page(width=pix.width, height=pix.height)
    page.insert_image(page.rect, stream=png)
    text = page.get_text("text", textpage=page.get_textpage_ocr(dpi=150, full=True))
    return "".join(text.split())


def _screenshot_pdf(path: Path) -> Path:
    """A page whose only text is a caption; the key is in a picture on it."""
    shot = pymupdf.open()
    page = shot.new_page(width=600, height=100)
    page.insert_text((10, 50), f"token {GITHUB}", fontsize=20)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(3, 3))
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 50), "the terminal, see picture", fontsize=12)
    page.insert_image(pymupdf.Rect(20, 100, 580, 200), pixmap=pix)
    doc.save(path)
    return path


@pytest.mark.skipif(not tesseract_available(), reason="needs tesseract")
def test_a_key_in_a_screenshot_on_a_page_is_boxed(tmp_path):
    png, _ = pdf_page_png(_screenshot_pdf(tmp_path / "shot.pdf"), 1)
    seen = _read_back(png)
    assert "terminal" in seen  # the picture is drawn, not withheld
    assert "Zx9Zx9" not in seen and "ghp" not in seen


@pytest.mark.skipif(not tesseract_available(), reason="needs tesseract")
def test_a_page_whose_pictures_hold_no_secret_is_drawn_as_it_is(tmp_path):
    shot = pymupdf.open()
    page = shot.new_page(width=600, height=100)
    page.insert_text((10, 50), "a plain diagram label", fontsize=20)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(20, 100, 580, 200), pixmap=shot[0].get_pixmap())
    doc.save(tmp_path / "plain.pdf")
    png, _ = pdf_page_png(tmp_path / "plain.pdf", 1)
    assert "plaindiagramlabel" in _read_back(png)


def test_a_key_hyphenated_at_a_line_break_is_redacted_whole():
    text = f"the token {GITHUB[:20]}-\n{GITHUB[20:]} was revoked\n"
    found = secrets.scan(text, "notes.md")
    assert [f.kind for f in found.findings] == ["github-token"]
    assert GITHUB[:12] not in found.text and GITHUB[24:] not in found.text
    assert found.text.count("\n") == 2
    # an ordinary hyphenated word is left alone
    assert secrets.scan("a well-\nknown key-\nvalue store\n", "notes.md").findings == ()


def test_a_hyphenated_key_on_a_pdf_page_is_hidden_on_its_picture(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((50, 100), f"token {GITHUB[:20]}-", fontsize=12)
    page.insert_text((50, 120), GITHUB[20:], fontsize=12)
    doc.save(tmp_path / "h.pdf")
    png, _ = pdf_page_png(tmp_path / "h.pdf", 1, flagged=True)
    with pymupdf.open(tmp_path / "h.pdf") as doc:
        page = doc[0]
        for piece in (GITHUB[:20], GITHUB[20:]):
            rect = page.search_for(piece)[0] * 1.5 + (2, 2, -2, -2)
            pix = pymupdf.Pixmap(png)
            dark = [sum(pix.pixel(x, y)[:3]) < 150 for x in range(int(rect.x0), int(rect.x1))
                    for y in range(int(rect.y0), int(rect.y1))]
            assert sum(dark) / len(dark) > 0.9, piece
