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


def test_a_few_pictures_or_pdfs_are_enough_work_for_the_worker_pool():
    from ingest.pipeline import PARALLEL_FILES, _work

    scans = [Candidate(f"scan{i}.tiff", Path(f"scan{i}.tiff"), ".", 1) for i in range(4)]
    texts = [Candidate(f"f{i}.txt", Path(f"f{i}.txt"), ".", 1) for i in range(4)]
    assert _work(scans, ProcessOptions()) >= PARALLEL_FILES  # OCR: seconds a file
    assert _work(scans, ProcessOptions(ocr=False)) < PARALLEL_FILES
    assert _work(texts, ProcessOptions()) < PARALLEL_FILES
