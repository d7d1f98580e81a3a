"""Whether OCR can run here: PDFs (page images) and videos (frame text) both ask."""

from __future__ import annotations

import functools
import shutil

import pymupdf


@functools.cache
def tesseract_available() -> bool:
    """True if PyMuPDF can OCR: a tesseract binary is on PATH and its tessdata is found."""
    if shutil.which("tesseract") is None:
        return False
    get_tessdata = getattr(pymupdf, "get_tessdata", None)
    if get_tessdata is None:
        return False
    try:
        return bool(get_tessdata())
    except Exception:
        return False
