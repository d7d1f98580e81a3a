"""PDF reading with PyMuPDF: one segment per page, document metadata and OCR for scanned pages;
and where a page's secrets are on its picture, so a drawn page can hide them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pymupdf

from ingest import secrets
from ingest.ocr import tesseract_available
from ingest.pictures import PictureOptions
from ingest.types import IngestError, Picture, Segment

_METADATA_KEYS = ("title", "author", "subject", "keywords", "creator", "producer", "creationDate",
                  "format")
_OCR_DPI = 200


class PdfError(IngestError):
    """A PDF that cannot be read: encrypted with a password, corrupt, empty or over a limit."""


@dataclass(frozen=True)
class PdfResult:
    """The pages of a PDF as segments, plus its metadata and reading flags."""

    segments: list[Segment]
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    #: figure pages drawn for a vision target (their `<picture image=...>` tags in the pages)
    pictures: list[Picture] = field(default_factory=list)


def _clean(text: str) -> str:
    """Normalize line endings, strip trailing whitespace and end non-empty text with a newline."""
    text = text.replace("\r\n", "\n").rstrip()
    return text + "\n" if text else ""


def page_text(page: pymupdf.Page) -> str:
    """A page's text layer as ingest stores it (before the secret scan)."""
    return _clean(page.get_text("text", sort=True))


def secret_rects(doc: pymupdf.Document, number: int, filename: str = "page.pdf",
                 ) -> list[pymupdf.Rect] | None:
    """Where the secrets of page `number` (1-based) are on the page, found as ingest finds them
    (the page's text with its neighbours', for keys broken by a page break); None when one of
    them cannot be located on the page (its picture must not be shown then)."""
    texts = [page_text(doc.load_page(i)) if 0 <= i < doc.page_count else ""
             for i in (number - 2, number - 1, number)]
    found = secrets.scan(texts[1], filename, texts[0], texts[2])
    page = doc.load_page(number - 1)
    rects: list[pymupdf.Rect] = []
    for value in found.values(texts[1]):
        located = page.search_for(value.strip()) if value.strip() else []
        if not located:
            return None
        rects += located
    return rects


def image_secret_rects(doc: pymupdf.Document, number: int, filename: str = "page.pdf",
                       language: str = "eng") -> list[pymupdf.Rect] | None:
    """Where secrets shown inside the pictures of page `number` (a screenshot of a terminal, a
    scanned note pasted into a report) are: the page's images are OCRed, as the text layer does
    not hold them. [] for a page without images, or when tesseract is missing (nothing can be
    read from them then); None when OCR fails or a secret it read cannot be located."""
    page = doc.load_page(number - 1)
    if not page.get_images() or not tesseract_available():
        return []
    try:
        tp = page.get_textpage_ocr(language=language, dpi=_OCR_DPI, full=False)
        text = page.get_text("text", textpage=tp)
    except Exception:
        return None
    found = secrets.scan(text, filename)
    rects: list[pymupdf.Rect] = []
    for value in found.values(text):
        located = page.search_for(value.strip(), textpage=tp) if value.strip() else []
        if not located:
            return None
        rects += located
    return _whole_words(page, tp, rects) if rects else []


def _whole_words(page: pymupdf.Page, tp: pymupdf.TextPage,
                 rects: list[pymupdf.Rect]) -> list[pymupdf.Rect]:
    """The OCR words a located value touches, whole: OCR's character boxes are estimates, and
    a value read one character short would leave the key's end visible."""
    words = [pymupdf.Rect(w[:4]) for w in page.get_text("words", textpage=tp)]
    touched = [w for w in rects + words if any(w.intersects(r) for r in rects)]
    # and a character's width more either side: OCR's word boxes can clip the last glyph
    return [w + (-w.height / 4, -2, w.height / 4, 2) for w in touched]


def _ocr_page(page: pymupdf.Page, language: str) -> str | None:
    """OCR one page; None if OCR fails."""
    try:
        tp = page.get_textpage_ocr(language=language, dpi=_OCR_DPI, full=True)
        return _clean(page.get_text("text", textpage=tp, sort=True))
    except Exception:
        return None


def _metadata(doc: pymupdf.Document) -> dict[str, str]:
    raw = doc.metadata or {}
    meta = {key: str(raw[key]).strip() for key in _METADATA_KEYS if raw.get(key)}
    meta = {key: value for key, value in meta.items() if value}
    meta["page_count"] = str(doc.page_count)
    return meta


def read_pdf(
    data: bytes,
    *,
    ocr: bool = True,
    ocr_language: str = "eng",
    max_pages: int | None = None,
    pictures: PictureOptions | None = None,
) -> PdfResult:
    """Read a PDF from bytes into one "page" segment per page (page numbers are 1-based).

    Pages without a text layer are OCRed when `ocr` is set and tesseract is available
    (flag "ocr:p<N>"), otherwise kept as empty segments (flag "no-text-layer:p<N>").
    Raises PdfError for encrypted, corrupt or empty PDFs and for more pages than `max_pages`.
    """
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:
        raise PdfError(f"corrupt PDF: {exc}") from exc

    with doc:
        if doc.needs_pass:
            raise PdfError("encrypted PDF (password required)")
        flags: list[str] = []
        if (doc.metadata or {}).get("encryption"):
            flags.append("encrypted-no-password")

        try:
            page_count = doc.page_count
        except Exception as exc:
            raise PdfError(f"corrupt PDF: {exc}") from exc
        if page_count == 0:
            if doc.is_repaired:
                raise PdfError("corrupt PDF: no readable pages")
            raise PdfError("empty PDF (no pages)")
        if max_pages is not None and page_count > max_pages:
            raise PdfError(f"PDF has {page_count} pages, over the limit of {max_pages}")

        can_ocr = ocr and tesseract_available()
        segments: list[Segment] = []
        for index in range(page_count):
            number = index + 1
            try:
                page = doc.load_page(index)
                text = page_text(page)
            except Exception as exc:
                raise PdfError(f"corrupt PDF: page {number}: {exc}") from exc
            if not text:
                ocr_text = _ocr_page(page, ocr_language) if can_ocr else None
                if ocr_text is None:
                    flags.append(f"no-text-layer:p{number}")
                else:
                    text = ocr_text
                    flags.append(f"ocr:p{number}")
            segments.append(
                Segment(order=index, text=text, span_kind="page", start=number, end=number)
            )

        try:
            metadata = _metadata(doc)
        except Exception:
            metadata = {"page_count": str(page_count)}

    return PdfResult(segments=segments, metadata=metadata, flags=flags)
