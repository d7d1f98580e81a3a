"""Issue 23, item 2: a credential must not be readable anywhere a reader looks. The picture of
a cited PDF page hides it (black boxes over it, or no picture), PDF metadata is redacted before
it is stored, and `password: hunter2` in prose or a key broken over lines or pages is found.
The PDFs are real (PyMuPDF); the pictures are checked pixel by pixel."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from app.services.viewing import SourcePart, SourceView
from ingest import secrets
from ingest.documents import ProcessOptions, process
from ingest.types import Candidate, Document
from ui.render import PictureWithheld, pdf_page_png

# obviously fake, pattern-valid values (built here so no real-looking key sits in the repo)
GITHUB = "ghp_" + "Zx9" * 12
AWS = "AKIA" + "QWERTYUIOPLKJHGF"
ZOOM = 1.5


def _pdf(path: Path, pages: list[list[tuple[tuple[float, float], str]]],
         metadata: dict | None = None) -> Path:
    doc = pymupdf.open()
    for lines in pages:
        page = doc.new_page()
        for point, text in lines:
            page.insert_text(point, text, fontsize=14)
    if metadata:
        doc.set_metadata(metadata)
    doc.save(path)
    doc.close()
    return path


def _where(path: Path, page: int, text: str) -> list[pymupdf.Rect]:
    with pymupdf.open(path) as doc:
        return doc.load_page(page - 1).search_for(text)


def _dark_share(png: bytes, rect: pymupdf.Rect) -> float:
    """The share of dark pixels inside `rect` (page points) of a page drawn at ZOOM."""
    pix = pymupdf.Pixmap(png)
    inner = rect * ZOOM + (2, 2, -2, -2)
    xs = range(int(inner.x0), int(inner.x1))
    ys = range(int(inner.y0), int(inner.y1))
    dark = sum(sum(pix.pixel(x, y)[:3]) < 150 for x in xs for y in ys)
    return dark / max(1, len(xs) * len(ys))


def _process(path: Path, **options) -> Document:
    data = path.read_bytes()
    doc = process(Candidate(path.name, path, str(path.parent), len(data)), data,
                  ProcessOptions(**options))
    assert isinstance(doc, Document), doc
    return doc


def _view(path: Path, doc: Document) -> SourceView:
    parts = [SourcePart(s.span_kind, s.start, s.end, s.text) for s in doc.segments]
    return SourceView("c", doc.path, "pdf", path, parts, tuple(doc.flags))


def test_a_key_on_a_cited_page_is_a_black_box_on_its_picture(tmp_path):
    path = _pdf(tmp_path / "runbook.pdf", [
        [((72, 72), "Runbook"), ((72, 100), "Restart the workers nightly.")],
        [((72, 72), "Appendix"), ((72, 100), f"token {GITHUB}"),
         ((72, 130), "password: hunter2"), ((72, 160), "Rotate both monthly.")]])
    doc = _process(path)
    assert {"secret:p2:github-token", "secret:p2:secret-keyword"} <= set(doc.flags)
    assert GITHUB not in doc.text and "hunter2" not in doc.text
    view = _view(path, doc)
    assert view.page_holds_secret(2) and not view.page_holds_secret(1)

    png, _ = pdf_page_png(path, 2, "Rotate both monthly.", flagged=view.page_holds_secret(2))
    for value in (GITHUB, "hunter2"):
        (rect,) = _where(path, 2, value)
        assert _dark_share(png, rect) > 0.9, value  # drawn over, not just the glyphs
    (title,) = _where(path, 2, "Appendix")
    assert _dark_share(png, title) < 0.6  # the rest of the page is drawn as it is
    (word,) = _where(path, 2, "token")
    assert _dark_share(png, word) < 0.6
    with pymupdf.open(path) as original:  # the file on disk is untouched
        assert GITHUB in original.load_page(1).get_text()
    png1, _ = pdf_page_png(path, 1)
    (line,) = _where(path, 1, "Restart the workers nightly.")
    assert _dark_share(png1, line) < 0.6


def test_a_page_whose_secret_cannot_be_located_has_no_picture(tmp_path):
    """An OCRed page (a scan: the key is pixels, the text layer empty) that ingest flagged."""
    shot = pymupdf.open()
    shot.new_page().insert_text((72, 72), f"token {GITHUB}", fontsize=14)
    pix = shot.load_page(0).get_pixmap()
    scan = pymupdf.open()
    scan.new_page().insert_image(scan.load_page(0).rect, pixmap=pix)
    path = tmp_path / "scan.pdf"
    scan.save(path)
    view = SourceView("c", "scan.pdf", "pdf", path,
                      [SourcePart("page", 1, 1, "token [REDACTED:github-token]\n")],
                      ("ocr:p1", "secret:p1:github-token"))
    assert view.page_holds_secret(1)
    with pytest.raises(PictureWithheld, match="picture withheld: the page holds a redacted"):
        pdf_page_png(path, 1, flagged=view.page_holds_secret(1))
    pdf_page_png(path, 1)  # the same page with nothing flagged is drawn


def test_a_key_in_an_annotation_is_hidden_too(tmp_path):
    """A FreeText annotation's text is read (and scanned) with the page's, but is drawn on top
    of the page: the picture leaves annotations out, so the black box is what shows."""
    path = tmp_path / "note.pdf"
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Quarterly numbers")
    page.add_freetext_annot(pymupdf.Rect(72, 200, 400, 240), f"key {AWS}", fontsize=14,
                            text_color=(0, 0, 0), fill_color=(1, 1, 1))
    doc.save(path)
    found = _process(path)
    assert "secret:p1:aws-access-key" in found.flags and AWS not in found.text
    png, _ = pdf_page_png(path, 1, flagged=True)
    (rect,) = _where(path, 1, AWS)
    assert _dark_share(png, rect) > 0.9


def test_a_key_broken_by_a_page_break_is_redacted_on_both_pages(tmp_path):
    head, tail = GITHUB[:20], GITHUB[20:]
    path = _pdf(tmp_path / "split.pdf", [
        [((72, 72), "Setup"), ((72, 800), f"the token is {head}")],
        [((72, 72), f"{tail} and then restart"), ((72, 100), "Done.")]])
    doc = _process(path)
    p1, p2 = (s.text for s in doc.segments)
    assert head not in p1 and tail not in p2, (p1, p2)
    assert "[REDACTED:github-token]" in p1 and "[REDACTED:github-token] and then restart" in p2
    assert {"secret:p1:github-token", "secret:p2:github-token"} <= set(doc.flags)
    view = _view(path, doc)
    for number, piece in ((1, head), (2, tail)):
        png, _ = pdf_page_png(path, number, flagged=view.page_holds_secret(number))
        (rect,) = _where(path, number, piece)
        assert _dark_share(png, rect) > 0.9, number
    kept = _process(path, redact_secrets=False)
    assert head in kept.segments[0].text and "secret:p1:github-token" in kept.flags


def test_pdf_metadata_is_scanned_and_redacted_before_it_is_stored(tmp_path):
    path = _pdf(tmp_path / "meta.pdf", [[((72, 72), "Nothing to see")]], metadata={
        "title": "Runbook", "author": "ops, password: hunter2",
        "subject": f"deploy key {GITHUB}", "keywords": f"aws {AWS}"})
    doc = _process(path)
    stored = " ".join(doc.metadata.values())
    assert not any(v in stored for v in ("hunter2", GITHUB, AWS)), doc.metadata
    assert doc.metadata["title"] == "Runbook"
    assert doc.metadata["author"] == "ops, password: [REDACTED:secret-keyword]"
    assert {"secret:meta.author:secret-keyword", "secret:meta.subject:github-token",
            "secret:meta.keywords:aws-access-key"} <= set(doc.flags)
    assert all(v not in f for f in doc.flags for v in ("hunter2", GITHUB, AWS))
    kept = _process(path, redact_secrets=False)
    assert GITHUB in kept.metadata["subject"] and "secret:meta.subject:github-token" in kept.flags


PROSE = ["password: hunter2", "**Password:** hunter2", "`passwd = s3cr3tpw`", "secret: letmein99",
         "api_key: abcd1234efgh", "API key: sk4f9d8e7c6b5a", "The wifi password: hunter2.",
         "DB_PASSWORD: p4ssw0rd!", "password: swordfish"]
NOT_SECRETS = ["password: <your password>", "password: ********", "Password: ****",
               "password = os.environ['DB_PASSWORD']", "password: ${DB_PASS}",
               "password: {{ vault_pw }}", "Password: required", "password: none",
               "Password: Enter your password", "The password is stored in the vault.",
               "Secrets: Kubernetes objects hold them", "secret: SecretStr",
               "api_key: settings.API_KEY", "password: your_password_here", "password: xxxxxxxx",
               "Secret: Unknown", "pwd: /home/bob", "password = getenv('X')",
               "- password: `<redacted>`", "Passwords: are hashed"]


@pytest.mark.parametrize("name", ["notes.md", "talk.srt", "README.txt", "page.pdf"])
def test_prose_assignments_are_found_and_placeholders_are_not(name):
    for line in PROSE:
        found = secrets.scan(line + "\n", name)
        assert [f.kind for f in found.findings] == ["secret-keyword"], (name, line)
        assert "[REDACTED:secret-keyword]" in found.text
        assert not any(v in found.text for v in ("hunter2", "s3cr3tpw", "letmein99", "p4ssw0rd"))
    for line in NOT_SECRETS:
        assert secrets.scan(line + "\n", name).findings == (), (name, line)


def test_yaml_and_dotenv_placeholders_are_not_secrets():
    for name in ("app.yaml", ".env"):
        for line in ("password: <your password>", "password: ********",
                     "password: xxxxxxxx", "password: your-password-here"):
            assert secrets.scan(line + "\n", name).findings == (), (name, line)
        assert secrets.scan("password: hunter2\n", name).findings


def test_subtitles_in_a_video_are_scanned_with_the_prose_rule(tmp_path):
    from helpers import make_video

    video = make_video(tmp_path / "demo.mp4", ["Setup"], seconds_each=2)
    (tmp_path / "demo.srt").write_text("1\n00:00:01,000 --> 00:00:01,500\n"
                                       "the admin password: hunter2\n")
    data = video.read_bytes()
    doc = process(Candidate(video.name, video, str(tmp_path), len(data)), data, ProcessOptions())
    assert isinstance(doc, Document)
    assert "secret:@00:00:01:secret-keyword" in doc.flags
    assert "hunter2" not in doc.text
    assert "password: [REDACTED:secret-keyword]</subtitle>" in doc.text  # the markup holds


@pytest.mark.parametrize("name", ["notes.md", "deploy.py", "page.pdf"])
@pytest.mark.parametrize("cut", [6, 15, 30])
def test_a_key_broken_over_lines_is_redacted_in_both_parts(name, cut):
    text = f"use the token {GITHUB[:cut]}\n    {GITHUB[cut:]} to deploy\nnext line\n"
    found = secrets.scan(text, name)
    assert [(f.line, f.kind) for f in found.findings] == [(1, "github-token")]
    assert found.text == ("use the token [REDACTED:github-token]\n"
                          "    [REDACTED:github-token] to deploy\nnext line\n")
    assert found.values(text) == [GITHUB[:cut], GITHUB[cut:]]


def test_a_key_wrapped_over_three_lines_and_a_key_broken_inside_its_prefix():
    three = f"key:\n{GITHUB[:7]}\n{GITHUB[7:24]}\n{GITHUB[24:]}\nend\n"
    found = secrets.scan(three, "notes.md")
    assert found.text == "key:\n" + "[REDACTED:github-token]\n" * 3 + "end\n"
    assert [f.line for f in found.findings] == [2]
    two = f"id {AWS[:9]}\n{AWS[9:]}\n"  # no digit in it: two parts are enough
    assert AWS[9:] not in secrets.scan(two, "notes.md").text
    inside = f"token gh\np_{GITHUB[4:]}\n"  # prose wraps anywhere: the prefix too
    assert secrets.scan(inside, "notes.md").text == \
        "token [REDACTED:github-token]\n[REDACTED:github-token]\n"


def test_words_wrapped_in_prose_are_left_alone():
    text = ("The deployment documentation\ninformation is kept in the wiki; the\nAKIA prefix "
            "marks an access key\nid, for example.\nASIA\nASSOCIATES\nAT\nATHLETA\nAU\n")
    assert secrets.scan(text, "notes.md").findings == ()


def test_the_source_viewer_shows_the_redacted_text_instead_of_a_withheld_picture(tmp_path,
                                                                                 monkeypatch):
    from ui import sources_panel

    path = _pdf(tmp_path / "runbook.pdf", [[((72, 72), f"token {GITHUB}")]])
    doc = _process(path)
    shown: list[str] = []
    monkeypatch.setattr(sources_panel.st, "caption", lambda text: shown.append(f"caption:{text}"))
    monkeypatch.setattr(sources_panel.st, "markdown", lambda text, **_: shown.append(text))
    sources_panel._pdf(_view(path, doc), {"page": 1, "quote": "token"})
    assert shown[0].startswith("<figure") and "data:image/png" in shown[0]  # drawn, boxed
    assert "[REDACTED" not in shown[0]

    scanned = SourceView("c", "scan.pdf", "pdf", path,
                         [SourcePart("page", 1, 1, "token [REDACTED:github-token]\n")],
                         ("secret:p1:github-token",))
    monkeypatch.setattr("ui.render.secret_rects", lambda *a: None)  # cannot be located
    shown.clear()
    sources_panel._page_png.clear()
    sources_panel._pdf(scanned, {"page": 1, "quote": ""})
    assert shown[0] == "caption:picture withheld: the page holds a redacted secret; its text:"
    assert "data:image" not in " ".join(shown) and "[REDACTED:github-token]" in shown[1]
    assert GITHUB not in " ".join(shown)


def test_a_video_frame_whose_text_held_a_secret_is_not_drawn():
    parts = [SourcePart("time", 0, 0, '<frame t="00:00:00.000">Agenda</frame>\n'),
             SourcePart("time", 4000, 4000,
                        '<frame t="00:00:04.000">token [REDACTED:github-token]</frame>\n'),
             SourcePart("time", 4500, 4500, '<subtitle t="00:00:04.500">hi</subtitle>\n'),
             SourcePart("time", 9000, 9000, '<frame t="00:00:09.000">Thanks</frame>\n')]
    view = SourceView("c", "talk.mp4", "video", None, parts, ("secret:@00:00:04:github-token",))
    assert [view.frame_holds_secret(s) for s in (0, 3, 4, 6, 8, 9)] == \
        [False, False, True, True, True, False]


def test_a_scan_with_an_invisible_text_layer_is_boxed_over_its_pixels(tmp_path):
    """The usual scanned PDF: the page is a picture, OCR text lies invisibly over its words. The
    box covers the picture's pixels of the key, not only the invisible text."""
    line = f"token {GITHUB}"
    shot = pymupdf.open()
    shot.new_page().insert_text((72, 100), line, fontsize=14)
    pix = shot.load_page(0).get_pixmap(dpi=144)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(page.rect, pixmap=pix)
    page.insert_text((72, 100), line, fontsize=14, render_mode=3)  # invisible, over the pixels
    path = tmp_path / "scan.pdf"
    doc.save(path)
    found = _process(path)
    assert "secret:p1:github-token" in found.flags
    png, _ = pdf_page_png(path, 1, flagged=True)
    (rect,) = _where(path, 1, GITHUB)
    assert _dark_share(png, rect) > 0.9
    (word,) = _where(path, 1, "token")
    assert 0.02 < _dark_share(png, word) < 0.6  # the picture's other words are still drawn


def test_a_page_never_read_is_not_drawn(tmp_path, monkeypatch):
    """A scanned page ingested without OCR: nothing on it was checked, so no picture of it."""
    from ui import sources_panel

    path = _pdf(tmp_path / "scan.pdf", [[((72, 72), "placeholder")]])
    view = SourceView("c", "scan.pdf", "pdf", path, [SourcePart("page", 1, 1, "")],
                      ("no-text-layer:p1",))
    shown: list[str] = []
    monkeypatch.setattr(sources_panel.st, "caption", lambda text: shown.append(f"caption:{text}"))
    monkeypatch.setattr(sources_panel.st, "markdown", lambda text, **_: shown.append(text))
    sources_panel._pdf(view, {"page": 1, "quote": ""})
    assert shown[0].startswith("caption:picture withheld: the page has no text layer")
    assert "data:image" not in " ".join(shown)
