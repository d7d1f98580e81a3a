"""OCR of pictures and frames (ingest/ocr.py): read through libtesseract's C API as the
`tesseract` command reads a page (its layout analysis, so a sidebar and a diagram's boxes are
read, not only the main block), in each worker process, with PyMuPDF as the fallback."""

from __future__ import annotations

import os

import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest import ocr
from ingest.ocr import ocr_rgb, tesseract_available

pytestmark = pytest.mark.skipif(not tesseract_available(), reason="needs tesseract")

SIDEBAR = ("inventory", "firewall", "pipeline")
BOXES = ("gateway", "storage")
BODY = "quarterly revenue review shipment"


def _font(size: int):
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"):
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def screenshot() -> Image.Image:
    """A small window: a sidebar of menu words, two labelled boxes joined by a line, a text
    row: the layout PyMuPDF's OCR (one block) read only in part."""
    img = Image.new("RGB", (720, 360), (250, 250, 252))
    draw = ImageDraw.Draw(img)
    font = _font(18)
    draw.rectangle((0, 0, 150, 360), fill=(235, 237, 242))
    for i, word in enumerate(SIDEBAR):
        draw.text((14, 30 + 44 * i), word, font=font, fill=(30, 30, 30))
    for i, word in enumerate(BOXES):
        x = 220 + 260 * i
        draw.rectangle((x, 40, x + 140, 90), outline=(60, 90, 140), width=2, fill=(225, 235, 250))
        draw.text((x + 22, 54), word, font=font, fill=(10, 10, 40))
    draw.line((360, 65, 480, 65), fill=(120, 120, 120), width=2)
    draw.text((180, 260), BODY, font=font, fill=(20, 20, 20))
    return img


def read(img: Image.Image) -> str:
    return ocr_rgb(img.tobytes(), img.width, img.height)


def test_reads_sidebar_boxes_and_text_rows() -> None:
    words = read(screenshot()).lower().split()
    for word in (*SIDEBAR, *BOXES, *BODY.split()):
        assert word in words


def test_one_line_per_text_line_without_blank_lines() -> None:
    text = read(screenshot())
    assert BODY in text.splitlines()
    assert all(line.strip() == line and line for line in text.splitlines())


def test_blank_picture_reads_nothing() -> None:
    img = Image.new("RGB", (320, 200), (255, 255, 255))
    assert read(img) == ""


def test_unknown_language_reads_nothing_without_raising() -> None:
    img = screenshot()
    assert ocr_rgb(img.tobytes(), img.width, img.height, "zz-not-a-language") == ""


def test_falls_back_to_pymupdf_without_libtesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    if not ocr._pymupdf_can_ocr():
        pytest.skip("PyMuPDF finds no tessdata here")
    monkeypatch.setattr(ocr, "_engine", lambda language: None)
    assert BODY.split()[0] in read(screenshot()).lower()


def test_workers_read_pictures_after_the_parent_did(tmp_path) -> None:
    """libgomp (Tesseract's OpenMP) hangs in a child forked from a parent that used it: after
    the parent has read a picture, the ingest's worker pool still reads pictures (its workers
    are started fresh when they may OCR), each with its own engine."""
    from ingest.documents import ProcessOptions
    from ingest.pipeline import PipelineOptions, run_pipeline
    from ingest.tokenizers import load_tokenizer

    parent = read(screenshot())
    for i in range(4):
        screenshot().save(tmp_path / f"shot{i}.png")
    result = run_pipeline([tmp_path], load_tokenizer("cl100k"),
                          PipelineOptions(process=ProcessOptions(), workers=2), {}, None)
    texts = [d.text for d in result.documents]
    assert len(texts) == 4 and all(parent.split()[0] in t for t in texts)


def test_tesseract_threads_are_limited_in_ingest_workers_only() -> None:
    """OpenMP threads in each worker fought the worker pool for the cores: one per worker.
    Set in the main process it reached the embedded model's torch (empty answers)."""
    import subprocess
    import sys

    code = ("import os; from ingest import ocr, pipeline; ocr.ocr_rgb(bytes(3 * 64 * 64), 64, 64)"
            "; print(os.environ.get('OMP_THREAD_LIMIT')); pipeline._init_reader("
            "pipeline.ProcessOptions(), None, os.getppid()); print(os.environ['OMP_THREAD_LIMIT'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["None", "1"], out.stderr


def page(angle: float) -> Image.Image:
    """A small printed page of long lines, turned by `angle` degrees (a crooked scan)."""
    img = Image.new("L", (900, 700), 240)
    draw = ImageDraw.Draw(img)
    for i in range(12):
        draw.text((40, 40 + 50 * i), f"{BODY} {BODY} line {i}", font=_font(22), fill=20)
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=240)


@pytest.mark.parametrize("angle", [-2.0, 1.4])
def test_a_crooked_scan_is_read_straightened(monkeypatch: pytest.MonkeyPatch,
                                             angle: float) -> None:
    """Tesseract's layout analysis dropped whole blocks of long-lined pages 1.4 degrees
    askew: the page handed to it runs level."""
    given = []
    monkeypatch.setattr(ocr._Engine, "read",
                        lambda self, grey, w, h: given.append(Image.frombytes("L", (w, h), grey))
                        or "")
    img = page(angle).convert("RGB")
    assert ocr.skew(img.convert("L"))[0] == pytest.approx(-angle, abs=0.2)
    read(img)
    assert abs(ocr.skew(given[0])[0]) < ocr.MIN_SKEW


def test_a_level_screenshot_is_not_turned() -> None:
    grey = screenshot().convert("L")
    assert ocr.straightened(grey) is grey
    blank = Image.new("L", (400, 300), 255)
    assert ocr.skew(blank)[0] == 0.0


def test_workers_fork_while_no_openmp_is_loaded_and_start_fresh_after(tmp_path) -> None:
    """Spawned workers import the ingest again (~0.45 s of a cold pack of the standard library):
    a parent without an OpenMP runtime forks its workers, and they read pictures; once the
    parent has OCR'd (libgomp loaded) it spawns them."""
    import subprocess
    import sys

    for i in range(4):
        screenshot().save(tmp_path / f"shot{i}.png")
    word = BODY.split()[0]
    code = (
        "import sys; from ingest import ocr, pipeline\n"
        "from ingest.documents import ProcessOptions\n"
        "from ingest.tokenizers import load_tokenizer\n"
        "print(ocr.openmp_loaded(), pipeline._start_method(True))\n"
        "r = pipeline.run_pipeline([__import__('pathlib').Path(sys.argv[1])],"
        " load_tokenizer('cl100k'), pipeline.PipelineOptions(process=ProcessOptions(),"
        " workers=2), {}, None)\n"
        f"print(sum({word!r} in d.text.lower() for d in r.documents))\n"
        "ocr.ocr_rgb(bytes(3 * 64 * 64), 64, 64)\n"
        "print(ocr.openmp_loaded(), pipeline._start_method(True), pipeline._start_method(False))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["False", "fork", "4", "True", "spawn", "fork"], out.stderr
