"""Issue 25, item 1: picture files are documents. PNG, JPEG, WebP, GIF (first frame), BMP and
TIFF (page by page) are read by OCR, turned upright by their EXIF orientation, tagged with their
size, cited as `network-diagram.png` / `invoices-scan.tiff p.2`, and for a vision target carry
their JPEG and Llama 4's image-token cost into the document's tokens. Pictures are drawn here
with Pillow; OCR is the real Tesseract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import db_cli, drawn, encoded, write_rank_file
from PIL import Image, ImageDraw, ImageFont

from app.services.citations import sources_of as _sources
from app.services.citations import verify
from ingest.counting import count_documents
from ingest.documents import ProcessOptions, process
from ingest.imagefiles import read_image
from ingest.ocr import tesseract_available
from ingest.pack import Packer
from ingest.pictures import PictureOptions
from ingest.tokenizers import load_tokenizer
from ingest.types import Candidate, Document
from ingest.video import TILE, image_tokens, tile_grid

pytestmark = pytest.mark.skipif(not tesseract_available(), reason="needs tesseract")

FONT = ImageFont.load_default(size=40)


def words(text: str) -> str:
    """The words inside a `<picture>` tag."""
    return text.split(">", 1)[1].rsplit("</picture>", 1)[0]


def read(path: Path, options: ProcessOptions | None = None) -> Document:
    data = path.read_bytes()
    doc = process(Candidate(path.name, path, str(path.parent), len(data)), data,
                  options or ProcessOptions())
    assert isinstance(doc, Document), doc
    return doc


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"),
                                        ("BMP", "bmp"), ("GIF", "gif")])
def test_each_format_is_one_picture_with_its_words_and_size(tmp_path, fmt, suffix):
    path = tmp_path / f"diagram.{suffix}"
    path.write_bytes(encoded(drawn(["core switch uplink"]), fmt))
    doc = read(path)
    assert doc.kind == "image" and len(doc.segments) == 1
    seg = doc.segments[0]
    assert seg.text.startswith('<picture size="900x200">')
    assert "core switch uplink" in words(seg.text)
    assert seg.span_kind == "part" and seg.label == ""  # cited by the file name alone
    assert doc.metadata["size"] == "900x200"


def test_a_gif_is_read_by_its_first_frame_only(tmp_path):
    path = tmp_path / "anim.gif"
    first, second = drawn(["first frame words"]), drawn(["second frame text"])
    path.write_bytes(encoded(first, "GIF", save_all=True, append_images=[second], duration=100))
    doc = read(path)
    assert len(doc.segments) == 1
    assert "first frame words" in doc.text and "second" not in doc.text
    assert "animated:first-frame" in doc.flags


def test_animated_webp_is_flagged_a_stereo_mpo_is_not():
    frames = [Image.new("RGB", (64, 64), c) for c in ("white", "black")]
    webp = read_image(encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
                      "a.webp", PictureOptions(ocr=False))
    mpo = read_image(encoded(frames[0], "MPO", save_all=True, append_images=frames[1:]),
                     "stereo.jpg", PictureOptions(ocr=False))
    assert "animated:first-frame" in webp.flags and "animated:first-frame" not in mpo.flags
    assert len(webp.segments) == len(mpo.segments) == 1


def test_a_tiff_is_read_page_by_page_and_cited_by_page(tmp_path):
    path = tmp_path / "invoices-scan.tiff"
    pages = [drawn(["INVOICE 1001 total 450"]), drawn(["INVOICE 1002 total 780"], (800, 300))]
    path.write_bytes(encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    doc = read(path)
    assert [s.label for s in doc.segments] == ["p.1", "p.2"]
    assert "1001" in doc.segments[0].text and "1002" in doc.segments[1].text
    assert doc.segments[1].text.startswith('<picture size="800x300">')
    assert doc.metadata["pages"] == "2"


@pytest.mark.parametrize("orientation,stored", [
    (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
    (3, Image.Transpose.ROTATE_180)])
def test_exif_orientation_is_applied_before_ocr(tmp_path, orientation, stored):
    """A phone photo stored sideways, with the EXIF tag that says how to show it: its words
    are read upright and its size is the upright one."""
    upright = drawn(["Rack seven breaker"], (700, 160))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    path.write_bytes(encoded(upright.transpose(stored), "JPEG", exif=exif.tobytes()))
    seg = read(path).segments[0]
    assert "Rack seven breaker" in words(seg.text)
    assert seg.text.startswith('<picture size="700x160">')


def test_transparent_screenshot_text_is_read_on_white(tmp_path):
    image = Image.new("RGBA", (700, 160), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((30, 50), "transparent label", fill=(0, 0, 0, 255), font=FONT)
    path = tmp_path / "label.png"
    path.write_bytes(encoded(image, "PNG"))
    assert "transparent label" in read(path).text


def test_no_ocr_keeps_the_picture_with_its_size_only(tmp_path):
    path = tmp_path / "diagram.png"
    path.write_bytes(encoded(drawn(["words"]), "PNG"))
    doc = read(path, ProcessOptions(ocr=False))
    assert doc.text == '<picture size="900x200"></picture>\n'
    assert "no-ocr" in doc.flags


def test_a_vision_target_gets_the_jpeg_and_llama4_image_tokens_in_the_count(tmp_path):
    frames = tmp_path / "frames"
    path = tmp_path / "network-diagram.png"
    path.write_bytes(encoded(drawn(["uplink packet loss"], (1280, 800)), "PNG"))
    doc = read(path, ProcessOptions(vision=True, frames_dir=frames))
    rows, cols = tile_grid(1280, 800)
    cost = image_tokens(rows, cols)
    seg = doc.segments[0]
    m = re.match(r'<picture size="1280x800" image_tokens="(\d+)" tiles="(\d+)x(\d+)" '
                 r'image="([0-9a-f]{16}/1\.jpg)">', seg.text)
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (cost, rows, cols)
    assert seg.extra_tokens == cost
    with Image.open(frames / m[4]) as jpeg:  # saved; it fits its canvas as it is
        assert jpeg.format == "JPEG" and jpeg.size == (1280, 800)
    ranks = tmp_path / "tokenizer.model"
    write_rank_file(ranks)
    tok = load_tokenizer(f"llama4:{ranks}")
    counted = count_documents([doc], tok, None, workers=1)[0]
    assert counted.tokens == tok.count(seg.text) + cost


def test_a_large_scan_is_scaled_down_to_its_tile_canvas(tmp_path):
    frames = tmp_path / "frames"
    path = tmp_path / "scan.png"
    path.write_bytes(encoded(Image.new("RGB", (3000, 4000), "white"), "PNG"))
    doc = read(path, ProcessOptions(ocr=False, vision=True, frames_dir=frames))
    rows, cols = tile_grid(3000, 4000)
    assert doc.segments[0].extra_tokens == image_tokens(rows, cols) == image_tokens(4, 3)
    name = re.search(r'image="([^"]+)"', doc.text)[1]
    with Image.open(frames / name) as jpeg:  # what the processor would shrink it to, no more
        assert jpeg.width <= cols * TILE and jpeg.height <= rows * TILE
        assert max(jpeg.width / (cols * TILE), jpeg.height / (rows * TILE)) > 0.99


def test_a_small_picture_is_never_scaled_up(tmp_path):
    frames = tmp_path / "frames"
    path = tmp_path / "icon.png"
    path.write_bytes(encoded(drawn(["ok"], (120, 90)), "PNG"))
    doc = read(path, ProcessOptions(vision=True, frames_dir=frames))
    name = re.search(r'image="([^"]+)"', doc.text)[1]
    with Image.open(frames / name) as jpeg:
        assert jpeg.size == (120, 90)
    assert doc.segments[0].extra_tokens == image_tokens(1, 1)


def test_without_a_pictures_folder_no_image_is_promised():
    """vision without frames_dir (nowhere to keep the JPEG): the text target's tag."""
    data = encoded(drawn(["words"]), "PNG")
    doc = process(Candidate("a.png", Path("a.png"), ".", len(data)), data,
                  ProcessOptions(vision=True))
    assert 'image="' not in doc.text and doc.segments[0].extra_tokens == 0


def test_citations_name_the_file_and_the_tiff_page(tmp_path):
    diagram, scan = tmp_path / "network-diagram.png", tmp_path / "invoices-scan.tiff"
    diagram.write_bytes(encoded(drawn(["uplink packet loss"]), "PNG"))
    pages = [drawn(["INVOICE 1001"]), drawn(["INVOICE 1002 total 780"])]
    scan.write_bytes(encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    tok = load_tokenizer("cl100k")
    docs = count_documents([read(diagram), read(scan)], tok, None, workers=1)
    plan = Packer(tok, "xml", "t").plan(docs)
    ids = {(b.path, b.attrs.get("page")): b.id for b in plan.blocks}
    picture, page2 = ids[("network-diagram.png", None)], ids[("invoices-scan.tiff", "2")]
    answer = f'Loss is on the uplink [{picture}]; "INVOICE 1002" totals 780 [{page2} p.2].'
    labels = [(ref.label(), ref.verified) for ref in verify(answer, _sources(plan))]
    assert labels == [("network-diagram.png", True), ("invoices-scan.tiff p.2", True)]


def test_cli_ingest_of_a_picture_folder_reports_each_file(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "network-diagram.png").write_bytes(encoded(drawn(["core switch 2"]), "PNG"))
    pages = [drawn(["INVOICE 1001"]), drawn(["INVOICE 1002"])]
    (folder / "invoices-scan.tiff").write_bytes(
        encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    (folder / "corrupt.png").write_bytes(encoded(drawn(["cut"]), "PNG")[:300])
    home = tmp_path / "home"
    proc = db_cli("ingest", str(folder), "--corpus", "pics", "--json", home=home)
    assert proc.returncode == 3, proc.stderr  # stored what it could; one file unreadable
    rows = {r["path"]: r for r in json.loads(proc.stdout)["files"]}
    assert rows["network-diagram.png"]["status"] == "added"
    assert rows["invoices-scan.tiff"]["status"] == "added"
    bad = rows["corrupt.png"]
    assert bad["status"] == "error" and "truncated" in bad["reason"]
    assert "\n" not in bad["reason"] and "Traceback" not in proc.stderr
    packed = db_cli("pack", "pics", "-o", "-", home=home)
    assert packed.returncode == 0, packed.stderr
    assert '<source id="S2" path="invoices-scan.tiff" page="2">' in packed.stdout
    assert re.search(r'<source id="S\d" path="network-diagram.png">\n<picture size=',
                     packed.stdout)
    assert re.search(r"^S\d network-diagram.png tokens=\d+$", packed.stdout, re.M)  # manifest


def test_cli_pixel_limit_is_an_option(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "photo.png").write_bytes(encoded(drawn(["x"], (400, 300)), "PNG"))
    proc = db_cli("ingest", str(folder), "--corpus", "p", "--max-image-pixels", "100000",
                  "--json", home=tmp_path / "home")
    assert proc.returncode == 3, proc.stderr
    row = json.loads(proc.stdout)["files"][0]
    assert row["status"] == "error"
    assert row["reason"] == ("png file is 400 x 300 pixels (120,000), over the limit of "
                             "100,000 (--max-image-pixels)")
    from app.services.ingest_options import ingest_options
    from ingest.types import IngestError

    with pytest.raises(IngestError, match="--max-image-pixels must be at least 1"):
        ingest_options(max_image_pixels=0)


def test_the_pixel_limit_setting_reaches_the_picture_options(monkeypatch):
    from app.services import ingest_options as io_mod
    from app.settings import get_settings

    monkeypatch.setenv("SCOUTLENS_MAX_IMAGE_PIXELS", "12345")
    get_settings.cache_clear()
    try:
        assert io_mod.ingest_options().process.pictures.max_pixels == 12345
        assert io_mod.ingest_options(max_image_pixels=99).process.pictures.max_pixels == 99
    finally:
        monkeypatch.delenv("SCOUTLENS_MAX_IMAGE_PIXELS")
        get_settings.cache_clear()
    assert read_image(encoded(drawn(["x"]), "PNG"), "a.png", PictureOptions(ocr=False))
