"""Tests for ingest.pdf, on PDFs generated with PyMuPDF and on real PDFs from the system."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from ingest.ocr import tesseract_available
from ingest.pdf import PdfError, PdfResult, read_pdf
from ingest.types import IngestError

LIBTASN1_PDF = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
MIME_SPEC_PDF = Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")


def make_pdf(pages: list[str], **save_options: object) -> bytes:
    """A PDF with one page per entry; an empty string gives a blank page."""
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        if text:
            page.insert_text((72, 72), text)
    doc.set_metadata({"title": "Test Title", "author": "Ada"})
    data = doc.tobytes(**save_options)
    doc.close()
    return data


def test_pages_become_segments_with_metadata() -> None:
    texts = ["alpha first page", "bravo second page", "charlie third page"]
    result = read_pdf(make_pdf(texts))

    assert isinstance(result, PdfResult)
    assert [s.start for s in result.segments] == [1, 2, 3]
    assert [s.end for s in result.segments] == [1, 2, 3]
    assert [s.order for s in result.segments] == [0, 1, 2]
    assert all(s.span_kind == "page" for s in result.segments)
    for segment, text in zip(result.segments, texts, strict=True):
        assert text in segment.text
        assert segment.text.endswith("\n")
        others = [t for t in texts if t != text]
        assert not any(other in segment.text for other in others)
    assert result.segments[1].label == "p.2"
    assert result.metadata["title"] == "Test Title"
    assert result.metadata["author"] == "Ada"
    assert result.metadata["page_count"] == "3"
    assert all(value for value in result.metadata.values())
    assert result.flags == []


def test_blank_middle_page_keeps_page_numbers() -> None:
    result = read_pdf(make_pdf(["one", "", "three"]))

    assert [s.start for s in result.segments] == [1, 2, 3]
    assert result.segments[1].text == ""
    assert "one" in result.segments[0].text
    assert "three" in result.segments[2].text
    expected = "ocr:p2" if tesseract_available() else "no-text-layer:p2"
    assert result.flags == [expected]


def test_blank_page_without_ocr_is_flagged() -> None:
    result = read_pdf(make_pdf(["one", ""]), ocr=False)

    assert result.segments[1].text == ""
    assert result.flags == ["no-text-layer:p2"]


def test_password_protected_pdf_raises() -> None:
    data = make_pdf(["secret"], encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    with pytest.raises(PdfError, match="encrypted"):
        read_pdf(data)


def test_owner_password_only_pdf_is_readable() -> None:
    data = make_pdf(
        ["open sesame"], encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="", owner_pw="o"
    )
    result = read_pdf(data)

    assert "open sesame" in result.segments[0].text
    assert "encrypted-no-password" in result.flags


def _truncated_real_pdf() -> bytes:
    if not LIBTASN1_PDF.exists():
        pytest.skip(f"{LIBTASN1_PDF} not present")
    data = LIBTASN1_PDF.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7 garbage",
        b"",
        b"not a pdf at all",
        pytest.param(None, id="truncated-generated"),
        pytest.param("real", id="truncated-real"),
    ],
)
def test_corrupt_pdf_raises_pdf_error(data: bytes | str | None) -> None:
    if data is None:
        data = make_pdf(["some text"])[:100]
    elif data == "real":
        data = _truncated_real_pdf()
    assert isinstance(data, bytes)
    with pytest.raises(PdfError) as info:
        read_pdf(data)
    assert isinstance(info.value, IngestError)
    assert "PDF" in str(info.value)


def test_max_pages_limit() -> None:
    data = make_pdf(["a", "b", "c"])
    with pytest.raises(PdfError, match="3 pages, over the limit of 2"):
        read_pdf(data, max_pages=2)
    assert len(read_pdf(data, max_pages=3).segments) == 3


@pytest.mark.parametrize(
    ("path", "word"),
    [(LIBTASN1_PDF, "libtasn1"), (MIME_SPEC_PDF, "MIME")],
)
def test_real_pdfs(path: Path, word: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present")
    with pymupdf.open(path) as doc:
        page_count = doc.page_count

    result = read_pdf(path.read_bytes())

    assert len(result.segments) == page_count
    assert [s.start for s in result.segments] == list(range(1, page_count + 1))
    assert any(word in s.text for s in result.segments)
    assert result.metadata["page_count"] == str(page_count)
    assert result.metadata["format"].startswith("PDF")
    assert all(s.text == "" or s.text.endswith("\n") for s in result.segments)


def test_tesseract_available_is_cached_bool() -> None:
    first = tesseract_available()
    assert isinstance(first, bool)
    assert tesseract_available() is first
