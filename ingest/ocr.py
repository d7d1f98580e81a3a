"""OCR with Tesseract (through PyMuPDF's binding): PDFs (page images), video frames and pictures.

PyMuPDF is imported inside the functions: it costs ~0.4 s and most commands never OCR.
"""

from __future__ import annotations

import functools
import shutil


@functools.cache
def tesseract_available() -> bool:
    """True if PyMuPDF can OCR: a tesseract binary is on PATH and its tessdata is found."""
    if shutil.which("tesseract") is None:
        return False
    import pymupdf

    get_tessdata = getattr(pymupdf, "get_tessdata", None)
    if get_tessdata is None:
        return False
    try:
        return bool(get_tessdata())
    except Exception:
        return False


def ocr_rgb(rgb: bytes, width: int, height: int, language: str = "eng") -> str:
    """The words on an RGB picture (24-bit, row-major), read at its own resolution, as one line
    per text line; "" when nothing is found or OCR fails."""
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, width, height, rgb, False)
    doc = pymupdf.open()
    page = doc.new_page(width=width, height=height)
    page.insert_image(page.rect, pixmap=pix)
    try:
        tp = page.get_textpage_ocr(language=language, dpi=72, full=True)
        text = page.get_text("text", textpage=tp, sort=True)
    except Exception:
        return ""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
