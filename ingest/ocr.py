"""Whether OCR can run here: PDFs (page images) and videos (frame text) both ask."""

from __future__ import annotations

import functools
import shutil


@functools.cache
def tesseract_available() -> bool:
    """True if PyMuPDF can OCR: a tesseract binary is on PATH and its tessdata is found.
    (PyMuPDF is imported here, not at the top: it costs ~0.4 s and most commands never OCR.)"""
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
