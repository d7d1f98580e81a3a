"""Issue 25, item 2: figures inside PDFs. A page whose pictures or drawings cover a share of it
is a figure page: its pictures' words are OCRed for every target (a chart's values that the text
layer does not hold), and a vision target gets the page drawn at its tile canvas with its exact
image tokens. Logos and letterheads repeated on every page, tables and plain text are not
figures. The PDFs are real (PyMuPDF, matplotlib); OCR is real tesseract."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from ingest import pdf
from ingest.documents import ProcessOptions, process
from ingest.ocr import tesseract_available
from ingest.pdf import read_pdf
from ingest.pictures import PictureOptions
from ingest.types import Candidate, Document
from ingest.video import TILE, image_tokens, tile_grid

needs_ocr = pytest.mark.skipif(not tesseract_available(), reason="tesseract is not installed")
TEXT = PictureOptions()
VISION = PictureOptions(vision=True)
AWS = "AKIA" + "QWERTYUIOPLKJHGF"  # pattern-valid, obviously fake


def _chart_png(lines: list[str]) -> bytes:
    """A bar chart whose values are written on it (only there: not in any text layer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.bar(range(3), [30.1, 38.9, 41.7], color="#4477aa")
    ax.set_xticks([])
    ax.set_yticks([])
    for i, line in enumerate(lines):
        ax.text(0.03, 0.9 - 0.12 * i, line, transform=ax.transAxes, fontsize=22,
                bbox={"facecolor": "white", "edgecolor": "none"})
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _vector_chart_pdf(kind: str = "line") -> bytes:
    """A matplotlib chart saved as PDF: vector drawings, labels in the text layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if kind == "line":
        ax.plot(range(30), [(i * 7) % 11 for i in range(30)])
    else:
        ax.bar(["2023", "2024", "2025"], [35.2, 38.9, 41.7])
    ax.set_title("Packet loss by uplink")
    out = io.BytesIO()
    fig.savefig(out, format="pdf")
    plt.close(fig)
    return out.getvalue()


def _report(chart_lines: list[str] | None = ("2025: 41.7",)) -> bytes:
    """Page 1 prose; page 2 a caption and a chart picture whose values are only on it."""
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Annual report. Revenue grew.", fontsize=12)
    page = doc.new_page()
    page.insert_text((72, 72), "Figure 3 shows revenue by year.", fontsize=12)
    if chart_lines:
        page.insert_image(pymupdf.Rect(72, 100, 540, 412), stream=_chart_png(list(chart_lines)))
    data = doc.tobytes()
    doc.close()
    return data


def _rgb_png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@needs_ocr
def test_a_text_target_reads_the_values_on_a_chart_picture() -> None:
    result = read_pdf(_report(), pictures=TEXT)

    page2 = result.segments[1].text
    assert page2.startswith("Figure 3 shows revenue by year.\n")
    assert "<picture size=" in page2 and "2025: 41.7" in page2
    assert "image=" not in page2 and result.segments[1].extra_tokens == 0
    assert "<picture" not in result.segments[0].text
    assert "figure:p2" in result.flags and "figure:p1" not in result.flags
    assert result.pictures == []


@needs_ocr
def test_a_vision_target_gets_the_page_drawn_at_its_tile_canvas_with_exact_tokens() -> None:
    data = _report()
    result = read_pdf(data, pictures=VISION)

    [picture] = result.pictures
    assert picture.name == f"{hashlib.sha256(data).hexdigest()[:16]}/p2.jpg"
    image = Image.open(io.BytesIO(picture.jpeg))
    assert image.format == "JPEG" and image.size == (picture.width, picture.height)
    rows, cols = picture.grid
    assert (rows, cols) == tile_grid(*image.size, VISION.max_tiles)
    # the page fills its canvas on one side and is not drawn larger than the canvas
    assert image.width <= cols * TILE and image.height <= rows * TILE
    assert cols * TILE - image.width <= 1 or rows * TILE - image.height <= 1
    assert picture.image_tokens == image_tokens(rows, cols)
    page2 = result.segments[1]
    assert page2.extra_tokens == picture.image_tokens
    assert (f'<picture size="{image.width}x{image.height}" image_tokens="{picture.image_tokens}"'
            f' tiles="{rows}x{cols}" image="{picture.name}">') in page2.text
    assert "2025: 41.7" in page2.text  # its words go too
    assert result.segments[0].extra_tokens == 0


@pytest.mark.parametrize("size", [(595, 842), (842, 595), (612, 792), (300, 2000)])
def test_a_page_is_drawn_to_fill_its_tile_canvas_and_no_larger(size) -> None:
    page = pymupdf.open().new_page(width=size[0], height=size[1])
    sizes = {}
    for tiles in (16, 4, 1):
        _, width, height = pdf.page_canvas(page, tiles)
        rows, cols = tile_grid(width, height, tiles)
        assert width <= cols * TILE and height <= rows * TILE
        assert cols * TILE - width <= 1 or rows * TILE - height <= 1
        assert abs(width / height - size[0] / size[1]) < 0.01
        sizes[tiles] = width
    assert sizes[16] > sizes[4] > sizes[1]


@pytest.mark.parametrize("kind", ["line", "bar"])
def test_a_vector_chart_page_is_a_figure_page(kind: str) -> None:
    data = _vector_chart_pdf(kind)
    text = read_pdf(data, pictures=TEXT)
    vision = read_pdf(data, pictures=VISION)

    assert "figure:p1" in text.flags
    assert "Packet loss by uplink" in text.segments[0].text  # its labels: the text layer
    assert "<picture" not in text.segments[0].text  # nothing OCRed: no picture to read
    [picture] = vision.pictures
    assert vision.segments[0].extra_tokens == picture.image_tokens > 0


def test_a_logo_and_a_letterhead_on_every_page_are_not_figures() -> None:
    logo, band = _rgb_png(60, 60, (200, 30, 30)), _rgb_png(1000, 160, (20, 60, 140))
    doc = pymupdf.open()
    for n in range(4):
        page = doc.new_page()
        page.insert_image(pymupdf.Rect(500, 20, 550, 70), stream=logo)
        page.insert_image(pymupdf.Rect(50, 700, 550, 780), stream=band)  # 8% of the page
        page.insert_text((72, 120), f"Minutes of meeting {n}: budget approved.")
    result = read_pdf(doc.tobytes(), pictures=VISION)

    assert not [f for f in result.flags if f.startswith("figure")]
    assert result.pictures == [] and all("<picture" not in s.text for s in result.segments)


def test_the_same_picture_once_is_a_figure() -> None:
    """The letterhead rule is about repetition: the band alone on one page of four counts."""
    band = _rgb_png(1000, 160, (20, 60, 140))
    doc = pymupdf.open()
    for n in range(4):
        page = doc.new_page()
        page.insert_text((72, 120), f"Section {n}.")
        if n == 2:
            page.insert_image(pymupdf.Rect(50, 300, 550, 380), stream=band)
    assert [f for f in read_pdf(doc.tobytes(), pictures=TEXT).flags
            if f.startswith("figure")] == ["figure:p3"]


def test_plain_text_and_a_table_are_not_figures() -> None:
    doc = pymupdf.open()
    doc.new_page().insert_textbox(pymupdf.Rect(72, 72, 540, 760), "Plain prose. " * 400)
    table = doc.new_page()
    for r in range(15):
        for c in range(4):
            cell = pymupdf.Rect(72 + c * 117, 100 + r * 20, 72 + (c + 1) * 117, 120 + r * 20)
            table.draw_rect(cell, color=(0, 0, 0), fill=(0.9, 0.9, 0.9) if r % 2 else None)
            if r % 3:  # and empty shaded cells: alike, unlike a chart's bars
                table.insert_text(cell.bl + (4, -6), f"row {r} col {c}", fontsize=9)
    code = doc.new_page()
    code.draw_rect(pymupdf.Rect(72, 100, 540, 500), color=None, fill=(0.95, 0.95, 0.95))
    code.insert_textbox(pymupdf.Rect(80, 110, 530, 490), "def f(x):\n    return x\n" * 12)
    result = read_pdf(doc.tobytes(), pictures=VISION)

    assert not [f for f in result.flags if f.startswith("figure")]
    assert result.pictures == []


@needs_ocr
def test_a_scanned_page_is_read_as_text_not_as_a_figure() -> None:
    scan = Image.new("RGB", (850, 1100), "white")
    from PIL import ImageDraw

    ImageDraw.Draw(scan).text((80, 80), "INVOICE 4471", fill="black", font_size=60)
    out = io.BytesIO()
    scan.save(out, "PNG")
    doc = pymupdf.open()
    doc.new_page().insert_image(pymupdf.Rect(0, 0, 595, 842), stream=out.getvalue())
    result = read_pdf(doc.tobytes(), pictures=VISION)

    assert result.flags == ["ocr:p1"] and "INVOICE 4471" in result.segments[0].text
    assert result.pictures == []


def test_without_picture_options_a_pdf_reads_as_before() -> None:
    data = _report(None)
    chart = _report()
    assert read_pdf(chart).flags == [] and read_pdf(chart).pictures == []
    assert [s.text for s in read_pdf(chart).segments] == [s.text for s in read_pdf(data).segments]


def test_figure_pages_per_pdf_are_capped_largest_first(monkeypatch) -> None:
    monkeypatch.setattr(pdf, "MAX_FIGURE_PAGES", 1)
    chart = _rgb_png(400, 300, (90, 140, 60))
    doc = pymupdf.open()
    for rect in (pymupdf.Rect(72, 100, 372, 325), pymupdf.Rect(72, 100, 540, 450)):
        doc.new_page().insert_image(rect, stream=chart)
        chart = _rgb_png(401, 300, (90, 140, 60))  # another picture, not a repeat
    result = read_pdf(doc.tobytes(), ocr=False, pictures=PictureOptions(vision=True, ocr=False))

    assert [p.name.rsplit("/", 1)[1] for p in result.pictures] == ["p2.jpg"]
    assert "figure:p2" in result.flags and "figure:p1" not in result.flags
    assert "figures-capped:2 figure pages, the 1 largest read" in result.flags


@needs_ocr
def test_a_chart_showing_a_key_is_redacted_and_its_picture_withheld(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(_report([f"key={AWS}"]))
    frames = tmp_path / "frames"
    doc = process(Candidate(path.name, path, str(tmp_path), path.stat().st_size),
                  path.read_bytes(),
                  ProcessOptions(vision=True, frames_dir=frames))
    assert isinstance(doc, Document), doc

    page2 = doc.segments[1]
    assert AWS not in page2.text and "image=" not in page2.text and page2.extra_tokens == 0
    assert any(f.startswith("picture-withheld:") for f in doc.flags)
    assert not list(frames.rglob("*.jpg"))


@needs_ocr
def test_a_chart_picture_is_saved_for_a_vision_target(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(_report())
    frames = tmp_path / "frames"
    doc = process(Candidate(path.name, path, str(tmp_path), path.stat().st_size),
                  path.read_bytes(), ProcessOptions(vision=True, frames_dir=frames))
    assert isinstance(doc, Document), doc

    [saved] = list(frames.rglob("*.jpg"))
    assert saved.name == "p2.jpg" and f'image="{saved.parent.name}/p2.jpg"' in doc.segments[1].text
    assert "figure:p2" in doc.flags


@needs_ocr
def test_a_chart_on_a_rotated_page_is_read_upright_and_drawn_as_shown() -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Landscape appendix.")
    page.insert_image(pymupdf.Rect(72, 100, 540, 412), stream=_chart_png(["2025: 41.7"]))
    page.set_rotation(90)
    result = read_pdf(doc.tobytes(), pictures=VISION)

    assert "figure:p1" in result.flags and "2025: 41.7" in result.segments[0].text
    [picture] = result.pictures
    assert picture.width > picture.height  # the page as a reader sees it: landscape


@needs_ocr
def test_only_the_largest_pictures_of_a_page_are_ocred(monkeypatch) -> None:
    monkeypatch.setattr(pdf, "MAX_PICTURES_READ", 1)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 40), "Two charts.")  # a text layer: else the whole page is OCRed
    page.insert_image(pymupdf.Rect(72, 60, 300, 212), stream=_chart_png(["small 11.1"]))
    page.insert_image(pymupdf.Rect(72, 300, 540, 612), stream=_chart_png(["large 99.9"]))
    text = read_pdf(doc.tobytes(), pictures=TEXT).segments[0].text

    assert "large 99.9" in text and "small" not in text
