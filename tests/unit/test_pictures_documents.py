"""The dispatch's share of issue 25: a mail's tracking pixel is decoration, its chart is not."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

from PIL import Image

from ingest.documents import ProcessOptions, process
from ingest.types import Candidate, Document, Skipped


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, "PNG")
    return out.getvalue()


def test_a_tracking_pixel_attached_to_a_mail_is_skipped_as_decoration_a_picture_is_kept():
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "chart"
    msg.set_content("see the chart")
    msg.add_attachment(_png(1, 1), maintype="image", subtype="png", filename="pixel.png")
    msg.add_attachment(_png(400, 300), maintype="image", subtype="png", filename="chart.png")
    data = bytes(msg)
    doc = process(Candidate("m.eml", Path("m.eml"), "m.eml", len(data)), data, ProcessOptions())
    children = {c.path: c for c in doc.children}
    pixel, chart = children["m.eml > pixel.png"], children["m.eml > chart.png"]
    assert isinstance(pixel, Skipped) and pixel.reason.startswith("decoration: a 1x1 picture")
    assert isinstance(chart, Document) and chart.kind == "image"


def test_an_icon_in_a_folder_is_skipped_as_decoration_without_being_read(monkeypatch):
    from ingest import pictures

    read: list[tuple[int, int]] = []
    real = pictures.ocr
    monkeypatch.setattr(pictures, "ocr", lambda page, options: read.append(page.size)
                        or real(page, options))
    data = _png(16, 16)  # idlelib/Icons/idle_16.png: nothing to read or show
    got = process(Candidate("icons/idle_16.png", Path("idle_16.png"), "icons", len(data)), data,
                  ProcessOptions())
    assert isinstance(got, Skipped) and got.reason.startswith("decoration: a 16x16 picture")
    wide = _png(200, 40)  # a banner is a picture: read
    got = process(Candidate("banner.png", Path("banner.png"), "x", len(wide)), wide,
                  ProcessOptions())
    assert isinstance(got, Document) and read == [(200, 40)]


def test_a_few_pictures_or_pdfs_are_enough_work_for_the_worker_pool():
    from ingest.collect import Candidates
    from ingest.pipeline import PARALLEL_FILES, _work

    scans, texts = Candidates(), Candidates()
    for i in range(4):
        scans.append(Candidate(f"scan{i}.tiff", Path(f"scan{i}.tiff"), ".", 1))
        texts.append(Candidate(f"f{i}.txt", Path(f"f{i}.txt"), ".", 1))
    assert _work(scans, ProcessOptions()) >= (PARALLEL_FILES, True)  # OCR: seconds a file
    assert _work(scans, ProcessOptions(ocr=False)) < (PARALLEL_FILES, False)
    assert _work(texts, ProcessOptions()) < (PARALLEL_FILES, False)


def test_a_question_saying_image_or_size_does_not_pick_the_pictures_with_no_words(tmp_path):
    from engine.images import choose

    names = ["a/1.jpg", "b/1.jpg", "c/1.jpg", "d/1.jpg"]
    words = ["", "", "revenue by year chart 2025", ""]
    for name in names:
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_bytes(_png(64, 64))
    text = "".join(
        f'<source id="S{i}" path="p{i}.png"><picture size="64x64" image_tokens="147" '
        f'tiles="1x1" image="{name}">{w}</picture>\n</source>\n'
        for i, (name, w) in enumerate(zip(names, words, strict=True)))
    asked = choose(text, tmp_path, "what size is the image in tiles jpg", 2)
    assert all(c.score == 0 for c in asked)  # the tags' own attributes are not its words
    chart = choose(text, tmp_path, "the revenue chart", 1)
    assert [c.name for c in chart if c.sent] == ["c/1.jpg"]


def test_kept_pictures_follow_their_corpus_and_are_drawn_again_when_lost(tmp_path):
    import json
    import shutil

    from helpers import db_cli, write_rank_file

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "chart.png").write_bytes(_png(400, 300))
    ranks = tmp_path / "tokenizer.model"
    write_rank_file(ranks)
    home = tmp_path / "home"
    frames = home / "cache" / "frames"

    def ingest() -> dict:
        proc = db_cli("ingest", str(folder), "--corpus", "v", "-t", f"llama4:{ranks}", "--json",
                      "--no-ocr", home=home)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["files"][0]

    assert ingest()["status"] == "added"
    assert list(frames.glob("*/1.jpg"))
    shutil.rmtree(frames)  # the kept pictures are lost: re-ingesting reads the file again
    assert ingest()["status"] == "unchanged"  # (its content is what was stored)
    assert list(frames.glob("*/1.jpg"))  # but its picture is drawn again
    assert db_cli("corpora", "rm", "v", home=home).returncode == 0
    assert not list(frames.glob("*/*.jpg"))  # a removed corpus leaves no picture behind


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SCOUTLENS_HOME": str(tmp_path), "SCOUTLENS_MAX_IMAGE_PIXELS": "abc"}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "corpora", "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: SCOUTLENS_MAX_IMAGE_PIXELS='abc'")


def test_a_fax_tiff_claiming_many_huge_pages_is_cut_at_the_file_budget():
    from ingest.imagefiles import read_image
    from ingest.pictures import PictureOptions

    pages = [Image.new("1", (3000, 3000), 1) for _ in range(5)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:], compression="group4")
    got = read_image(out.getvalue(), "fax.tiff",
                     PictureOptions(ocr=False, max_file_pixels=20_000_000))
    assert len(got.segments) == 2
    assert any(f.startswith("cut: pages 3- not read") for f in got.flags)
