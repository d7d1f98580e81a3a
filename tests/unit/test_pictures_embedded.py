"""Issue 25, item 2: pictures inside Word, PowerPoint, OpenDocument files and mail are read like
picture files: a chart or photo becomes a `<picture>` segment with its OCR text, cited by its
place ("§1 Results figure 1", "slide 2 picture 2"), with its exact image tokens for a vision
target; logos, icons and pictures Pillow cannot open are left out (flagged), never a failure.
Documents are generated with python-docx / python-pptx (ODF as its XML), pictures with Pillow."""

from __future__ import annotations

import io
import re
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from docx import Document as WordDocument
from docx.shared import Inches
from PIL import Image, ImageDraw, ImageFont
from pptx import Presentation
from pptx.util import Inches as SlideInches

from ingest import embedded
from ingest.documents import ProcessOptions, process
from ingest.embedded import insert_pictures
from ingest.ocr import tesseract_available
from ingest.pictures import PictureOptions
from ingest.slides import read_slides
from ingest.types import Candidate, Document, EmbeddedImage, Segment, Skipped, StructuredRead
from ingest.video import image_tokens, tile_grid
from ingest.word import read_word

AWS = "AKIA" + "QWERTYUIOPLKJHGF"  # pattern-valid, obviously fake
needs_ocr = pytest.mark.skipif(not tesseract_available(), reason="tesseract not installed")


def png(text: str = "", size: tuple[int, int] = (640, 240), color: str = "white") -> bytes:
    img = Image.new("RGB", size, color)
    if text:
        ImageDraw.Draw(img).text((20, size[1] // 2 - 30), text, fill="black",
                                 font=ImageFont.load_default(size=48))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def report(*pictures: bytes, width: float = 4.0) -> bytes:
    """A .docx: a preamble line, "Results" with a paragraph, then each picture, then a line."""
    doc = WordDocument()
    doc.add_paragraph("Quarterly report.")
    doc.add_heading("Results", 1)
    doc.add_paragraph("The chart below shows revenue by year.")
    for data in pictures:
        doc.add_picture(io.BytesIO(data), width=Inches(width))
    doc.add_heading("Outlook", 1)
    doc.add_paragraph("Next year looks flat.")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def run(tmp_path: Path, name: str, data: bytes, **options) -> Document | Skipped:
    where = tmp_path / name
    where.write_bytes(data)
    return process(Candidate(name, where, str(where), len(data)), data,
                   ProcessOptions(**options))


def pictures_of(doc: Document) -> list[Segment]:
    return [s for s in doc.segments if s.text.startswith("<picture")]


@needs_ocr
def test_a_charts_words_reach_a_text_target_cited_by_the_figures_place(tmp_path):
    doc = run(tmp_path, "report.docx", report(png("REVENUE 2025: 4.7M")))
    assert isinstance(doc, Document) and doc.kind == "word"
    (figure,) = pictures_of(doc)
    assert figure.label == "§1 Results figure 1" and figure.span_kind == "part"
    assert "REVENUE 2025: 4.7M" in figure.text and "REVENUE 2025" in doc.text
    assert figure.text.startswith('<picture size="640x240">') and figure.extra_tokens == 0
    labels = [s.label for s in doc.segments]  # right after the part its paragraph is in
    assert labels == ["¶1", "§1 Results ¶1", "§1 Results figure 1", "§2 Outlook ¶1"]
    assert [(s.order, s.start, s.end) for s in doc.segments] == [(i, i + 1, i + 1)
                                                                  for i in range(4)]
    assert doc.metadata["pictures"] == "1" and doc.content_key is None  # OCR is not pure


@needs_ocr
def test_a_slides_photo_is_one_picture_and_the_logo_on_every_slide_none(tmp_path):
    logo = png("ACME", (200, 200), "yellow")
    prs = Presentation()
    for number in range(1, 4):
        slide = prs.slides.add_slide(prs.slide_layouts[5])
        slide.shapes.title.text = f"Site visit {number}"
        slide.shapes.add_picture(io.BytesIO(logo), SlideInches(8.8), 0, SlideInches(1))
        if number == 2:
            slide.shapes.add_picture(io.BytesIO(png("PUMP 7 LEAKS")), SlideInches(1),
                                     SlideInches(2), SlideInches(6))
            slide.notes_slide.notes_text_frame.text = "Say it slowly."
    out = io.BytesIO()
    prs.save(out)
    doc = run(tmp_path, "visit.pptx", out.getvalue())
    assert isinstance(doc, Document)
    (photo,) = pictures_of(doc)
    assert photo.label == "slide 2 picture 2" and "PUMP 7 LEAKS" in photo.text
    assert [s.label for s in doc.segments] == ["slide 1", "slide 2", "slide 2 picture 2",
                                               "slide 2 (notes)", "slide 3"]
    assert "ACME" not in doc.text
    assert any(f.startswith("picture-repeated:ppt/media/image1.png: shown 3 times")
               for f in doc.flags)


def test_a_logo_on_two_of_three_slides_is_read_once_and_an_icon_never(tmp_path):
    logo, icon_art = png("", (300, 300), "red"), png("", (400, 400), "blue")
    prs = Presentation()
    for number in range(1, 4):
        slide = prs.slides.add_slide(prs.slide_layouts[6])
        if number < 3:
            slide.shapes.add_picture(io.BytesIO(logo), SlideInches(1), SlideInches(1),
                                     SlideInches(3))
        slide.shapes.add_picture(io.BytesIO(icon_art), 0, 0, SlideInches(0.4))  # under 1%
    out = io.BytesIO()
    prs.save(out)
    read = read_slides(out.getvalue(), "deck.pptx")
    assert [(i.after, i.locator) for i in read.images] == [(0, "slide 1 picture 1"),
                                                           (1, "slide 2 picture 1")]
    got = insert_pictures(read, PictureOptions(ocr=False), "f" * 64)
    assert [s.label for s in got.segments] == ["slide 1", "slide 1 picture 1", "slide 2",
                                               "slide 3"]


def test_a_vision_target_gets_the_picture_with_its_exact_image_tokens(tmp_path):
    frames = tmp_path / "frames"
    data = report(png("", (1280, 800), "lightgray"))
    doc = run(tmp_path, "report.docx", data, vision=True, frames_dir=frames, ocr=False)
    (figure,) = pictures_of(doc)
    rows, cols = tile_grid(1280, 800, 16)
    tokens = image_tokens(rows, cols)
    name = f"{doc.sha256[:16]}/e1.jpg"
    assert figure.extra_tokens == tokens
    assert figure.text == (f'<picture size="1280x800" image_tokens="{tokens}" '
                           f'tiles="{rows}x{cols}" image="{name}"></picture>\n')
    saved = Image.open(frames / name)
    assert saved.format == "JPEG" and saved.width <= cols * 336 and saved.height <= rows * 336

    read = insert_pictures(read_word(data, "report.docx"), PictureOptions(vision=True, ocr=False),
                           doc.sha256)
    (picture,) = read.pictures
    assert (picture.name, picture.grid, picture.image_tokens) == (name, (rows, cols), tokens)
    assert (picture.width, picture.height) == (1280, 800) and read.images == []


@needs_ocr
def test_a_screenshot_showing_a_credential_is_flagged_redacted_and_withheld(tmp_path):
    shot = report(png(AWS, (1000, 200)))
    frames = tmp_path / "frames"
    doc = run(tmp_path, "handover.docx", shot, vision=True, frames_dir=frames)
    (figure,) = pictures_of(doc)
    assert "secret:[§1 Results figure 1]:aws-access-key" in doc.flags
    assert "picture-withheld:[§1 Results figure 1]: it shows a secret" in doc.flags
    assert AWS not in doc.text and "[REDACTED" in figure.text
    assert figure.extra_tokens == 0 and "image=" not in figure.text
    assert not list(frames.rglob("*.jpg"))

    kept = run(tmp_path, "handover.docx", shot, vision=True, frames_dir=frames,
               redact_secrets=False)  # --keep secrets: sent on purpose
    (figure,) = pictures_of(kept)
    assert AWS in figure.text and figure.extra_tokens > 0
    assert len(list(frames.rglob("*.jpg"))) == 1


def _swap_part(data: bytes, name: str, body: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, body if info.filename == name else src.read(info))
    return out.getvalue()


EMF = b"\x01\x00\x00\x00" + b"\x00" * 36 + b" EMF" + b"\x00" * 48


def test_icons_unreadable_and_oversized_pictures_are_flags_not_failures(tmp_path):
    data = report(png("", (32, 32), "red"), png("", (640, 240), "gray"),
                  png("", (700, 300), "green"))
    data = _swap_part(data, "word/media/image2.png", EMF)
    doc = run(tmp_path, "mixed.docx", data, ocr=False)
    assert isinstance(doc, Document)
    assert [s.label for s in pictures_of(doc)] == ["§1 Results figure 3"]  # 32 px: an icon
    assert "picture-unreadable:word/media/image2.png" in doc.flags

    small = PictureOptions(max_pixels=100_000)
    doc = run(tmp_path, "mixed.docx", data, ocr=False, pictures=small)
    assert isinstance(doc, Document) and not pictures_of(doc)
    (too_large,) = [f for f in doc.flags if f.startswith("picture-too-large:")]
    assert too_large.startswith("picture-too-large:word/media/image3.png:")
    assert "700 x 300" in too_large and "\n" not in too_large


def test_insert_pictures_places_and_numbers_parts():
    parts = [Segment(i, f"part {i}\n", "part", i + 1, i + 1, locator=f"p{i}") for i in range(3)]
    images = [EmbeddedImage(-1, "cover", png("", (100, 100), "red"), "a.png"),
              EmbeddedImage(1, "fig 1", png("", (120, 100), "blue"), "b.png"),
              EmbeddedImage(1, "fig 2", png("", (100, 100), "red"), "a.png"),  # seen: once
              EmbeddedImage(9, "late", png("", (100, 130), "green"), "c.png")]
    read = StructuredRead("word", parts, {}, [], images=images)
    got = insert_pictures(read, PictureOptions(ocr=False), "0" * 64)
    assert [s.label for s in got.segments] == ["cover", "p0", "p1", "fig 1", "p2", "late"]
    assert [(s.order, s.start, s.end) for s in got.segments] == [(i, i + 1, i + 1)
                                                                 for i in range(6)]
    assert got.segments[0].text == '<picture size="100x100"></picture>\n'
    assert got.metadata == {"pictures": "3"} and got.pictures == [] and got.images == []


def test_at_most_max_pictures_are_read(monkeypatch):
    monkeypatch.setattr(embedded, "MAX_PICTURES", 2)
    images = [EmbeddedImage(0, f"fig {n}", png("", (80 + n, 80)), f"{n}.png") for n in range(4)]
    read = StructuredRead("slides", [Segment(0, "s\n", "part", 1, 1, locator="slide 1")],
                          images=images)
    got = insert_pictures(read, PictureOptions(ocr=False), "0" * 64)
    assert [s.label for s in got.segments] == ["slide 1", "fig 0", "fig 1"]
    assert any(f.startswith("cut:pictures:") for f in got.flags)


ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
          'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
          'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
          'xmlns:xlink="http://www.w3.org/1999/xlink"')


def odf(kind: str, body: str, pictures: dict[str, bytes]) -> bytes:
    content = (f'<?xml version="1.0"?><office:document-content {ODF_NS}><office:body>'
               f'<office:{kind}>{body}</office:{kind}></office:body></office:document-content>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", f"application/vnd.oasis.opendocument.{kind}")
        zf.writestr("content.xml", content)
        zf.writestr("META-INF/manifest.xml", "<manifest/>")
        for name, data in pictures.items():
            zf.writestr(name, data)
    return out.getvalue()


def frame(href: str, size: str = 'svg:width="12cm" svg:height="6cm"', xy: str = "") -> str:
    return f'<draw:frame {size} {xy}><draw:image xlink:href="{href}"/></draw:frame>'


def test_odt_and_odp_pictures_sit_after_their_paragraph_and_slide(tmp_path):
    icon = frame("Pictures/icon.png", 'svg:width="0.5cm" svg:height="0.5cm"')
    body = ("<text:p>Intro.</text:p>"
            '<text:h text:outline-level="1">Budget</text:h>'
            f"<text:p>Spend by month:{frame('Pictures/chart.png')}</text:p>"
            f"<text:p>{icon}</text:p>"
            f"<text:p>{frame('http://tracker.example/p.png')}</text:p>"
            '<text:h text:outline-level="1">Risks</text:h><text:p>None.</text:p>')
    data = odf("text", body, {"Pictures/chart.png": png("", (640, 240), "gray"),
                              "Pictures/icon.png": png("", (300, 300), "red")})
    doc = run(tmp_path, "plan.odt", data, ocr=False)
    assert [s.label for s in doc.segments] == ["¶1", "§1 Budget ¶1", "§1 Budget figure 1",
                                               "§2 Risks ¶1"]
    assert "external:image:http://tracker.example/p.png" in doc.flags

    low = frame("Pictures/b.png", xy='svg:y="9cm"')
    high = frame("Pictures/a.png", xy='svg:y="1cm"')
    slides = (f"<draw:page>{low}{high}"
              '<presentation:notes><draw:frame><draw:text-box><text:p>Notes here.</text:p>'
              '</draw:text-box></draw:frame></presentation:notes></draw:page>'
              '<draw:page><draw:frame><draw:text-box><text:p>End.</text:p></draw:text-box>'
              '</draw:frame></draw:page>')
    data = odf("presentation", slides, {"Pictures/a.png": png("", (200, 100), "gray"),
                                        "Pictures/b.png": png("", (100, 200), "gray")})
    doc = run(tmp_path, "talk.odp", data, ocr=False)
    assert [s.label for s in doc.segments] == ["slide 1", "slide 1 picture 1",
                                               "slide 1 picture 2", "slide 1 (notes)", "slide 2"]
    assert [s.text for s in pictures_of(doc)] == [  # top (a.png) first
        '<picture size="200x100"></picture>\n', '<picture size="100x200"></picture>\n']


def _eml(attachments: list[tuple[str, bytes, str]], inline: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "Diagram"
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg.set_content("See the diagram.\n")
    if inline is not None:
        msg.add_alternative('<p>See <img src="cid:d1"></p>', subtype="html")
        msg.get_payload()[1].add_related(inline, maintype="image", subtype="png", cid="<d1>")
    for name, data, ctype in attachments:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg.as_bytes()


def test_a_mails_pictures_are_image_documents_and_a_fake_png_one_line(tmp_path):
    fake = io.BytesIO()
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("x.txt", "not a picture")
    data = _eml([("network.png", png("", (320, 200)), "image/png"),
                 ("fake.png", fake.getvalue(), "image/png"),
                 ("page.png", b"<!DOCTYPE html><html><body>hi</body></html>", "image/png")],
                inline=png("", (300, 120), "gray"))
    mail = run(tmp_path, "diagram.eml", data, ocr=False)
    assert isinstance(mail, Document) and mail.kind == "mail"
    kids = {c.path: c for c in mail.children}
    diagram = kids["diagram.eml > network.png"]
    assert isinstance(diagram, Document) and diagram.kind == "image"
    assert diagram.segments[0].text == '<picture size="320x200"></picture>\n'
    inline = [c for p, c in kids.items() if re.fullmatch(r"diagram\.eml > attachment \d+\.png", p)]
    assert len(inline) == 1 and isinstance(inline[0], Document) and inline[0].kind == "image"
    for name, what in (("fake.png", "zip"), ("page.png", "HTML")):
        bad = kids[f"diagram.eml > {name}"]
        assert isinstance(bad, Skipped) and bad.status == "error"
        assert what in bad.reason and "\n" not in bad.reason and "Traceback" not in bad.reason


def test_a_saved_pages_shown_pictures_follow_their_section(tmp_path):
    from email.mime.image import MIMEImage
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    page = ("<html><body><nav><img src='https://ex.com/logo.png'> Home</nav>"
            "<h1>Report</h1><p>Revenue by year: <img src='https://ex.com/chart.png'></p>"
            "<div style='display:none'><img src='https://ex.com/hidden.png'></div>"
            "<h2>Team</h2><p><img src='cid:team@ex'> The team.</p>"
            "<p><img src='https://ex.com/not-saved.png'></p></body></html>")
    related = MIMEMultipart("related", type="text/html")
    related.attach(MIMEText(page, "html"))
    for where, size in (("https://ex.com/logo.png", (300, 100)),
                        ("https://ex.com/chart.png", (400, 200)),
                        ("https://ex.com/hidden.png", (200, 200)), ("<team@ex>", (150, 100))):
        part = MIMEImage(png("", size, "gray"), "png")
        part["Content-Location" if where.startswith("http") else "Content-ID"] = where
        related.attach(part)
    doc = run(tmp_path, "report.mhtml", related.as_bytes(), ocr=False)
    assert isinstance(doc, Document) and doc.kind == "web"
    assert [s.label for s in doc.segments] == ["§ Report", "§ Report picture 1", "§ Team",
                                               "§ Team picture 2"]
    assert [s.text for s in pictures_of(doc)] == ['<picture size="400x200"></picture>\n',
                                                  '<picture size="150x100"></picture>\n']


def test_a_picture_in_a_long_section_follows_the_part_holding_its_paragraph():
    from ingest.word import block_part, section_parts

    words = [" ".join(f"w{b}x{i}" for i in range(n)) for b, n in
             enumerate((900, 900, 4000, 10, 700))]
    blocks = [(text, False) for text in words]
    parts = section_parts("§1 Long", "# Long", blocks)
    assert len(parts) >= 5  # the 4,000-word paragraph is cut in pieces
    for index, text in enumerate(words):
        holder = parts[block_part("# Long", blocks, index)][1]
        assert text.split()[-1] in holder  # its paragraph's (last piece's) part
    assert block_part("# Long", blocks, -1) == 0  # before the first paragraph: the heading's
    assert block_part("", blocks, -1) == -1  # no heading: before the section
    assert block_part("# Only", [], -1) == 0
