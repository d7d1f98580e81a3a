"""An analyst's folder (Word, PowerPoint, Excel, a saved page, a mail with an attachment, an
EPUB) goes in as documents of their kinds with part locators, not as "skipped: binary" or raw
markup (issue 24); an HTML file in a code project stays source code, and the flag says which way
each went; the corpus stores and gives back the locators."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

from ingest.documents import ProcessOptions, html_is_source, process
from ingest.filters import NoiseFilter
from ingest.pipeline import PipelineOptions, run_pipeline
from ingest.tokenizers import load_tokenizer
from ingest.types import Candidate, Document, Skipped


def _docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Renewal", level=1)
    d.add_paragraph("The lease renews for five years unless notice is given.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _pptx() -> bytes:
    from pptx import Presentation

    p = Presentation()
    slide = p.slides.add_slide(p.slide_layouts[1])
    slide.shapes.title.text = "Q3 review"
    slide.placeholders[1].text = "Revenue grew twelve percent"
    slide.notes_slide.notes_text_frame.text = "Say the launch slips to May"
    buf = io.BytesIO()
    p.save(buf)
    return buf.getvalue()


def _xlsx() -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Opex"
    for row in (["Item", "Q3"], ["Travel", 7291], ["Rent", 1200]):
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


PAGE = b"""<html><head><title>News</title><style>p{color:red}</style>
<script>track()</script></head><body><nav><a href="/">Home</a><a href="/x">Menu</a></nav>
<main><h1>Harbour reopens</h1><p>The harbour reopens on Monday after repairs.</p></main>
<footer>Copyright</footer></body></html>"""


def _eml() -> bytes:
    msg = EmailMessage()
    msg["From"] = "ana@example.com"
    msg["To"] = "bo@example.com"
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg["Subject"] = "Q3 launch"
    msg.set_content("Budget attached.\n")
    msg.add_alternative("<p>Budget <b>attached</b>.</p>", subtype="html")
    msg.add_attachment(_xlsx(), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       filename="budget.xlsx")
    return msg.as_bytes()


def _epub() -> bytes:
    chapter = ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/'
               'xhtml"><head><title>c</title></head><body><h1>The Crossing</h1>'
               "<p>The sea was calm.</p></body></html>")
    opf = ('<?xml version="1.0" encoding="utf-8"?>\n<package xmlns="http://www.idpf.org/2007/opf"'
           ' version="2.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements'
           '/1.1/"><dc:title>Voyage</dc:title></metadata><manifest><item id="c1" href="c1.xhtml"'
           ' media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine>'
           "</package>")
    container = ('<?xml version="1.0"?>\n<container version="1.0" xmlns="urn:oasis:names:tc:'
                 'opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/c.opf" '
                 'media-type="application/oebps-package+xml"/></rootfiles></container>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", container)
        zf.writestr("OEBPS/c.opf", opf)
        zf.writestr("OEBPS/c1.xhtml", chapter)
    return buf.getvalue()


def _folder(root: Path) -> Path:
    files = {"lease.docx": _docx(), "review.pptx": _pptx(), "budget-2026.xlsx": _xlsx(),
             "news.html": PAGE, "q3-launch.eml": _eml(), "voyage.epub": _epub()}
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _run(root: Path):
    return run_pipeline([root], load_tokenizer("cl100k"), PipelineOptions())


def test_an_analysts_folder_goes_in_with_kinds_and_locators(tmp_path):
    result = _run(_folder(tmp_path / "docs"))
    assert not [s for s in result.skipped if s.reason.startswith("binary")]
    docs = {d.path.split("/", 1)[-1]: d for d in result.documents}
    kinds = {p: d.kind for p, d in docs.items()}
    assert kinds["lease.docx"] == "word" and kinds["review.pptx"] == "slides"
    assert kinds["budget-2026.xlsx"] == "sheet" and kinds["news.html"] == "web"
    assert kinds["q3-launch.eml"] == "mail" and kinds["voyage.epub"] == "ebook"
    attached = next(p for p in docs if p.endswith("q3-launch.eml > budget.xlsx"))
    assert docs[attached].kind == "sheet" and "7291" in docs[attached].text
    for path, doc in docs.items():
        assert doc.segments and all(s.span_kind == "part" and s.locator for s in doc.segments), path
        assert doc.tokens > 0 and doc.tokens == sum(s.tokens for s in doc.segments)
    assert any("Opex!" in s.locator for s in docs["budget-2026.xlsx"].segments)
    assert any("notes" in s.locator for s in docs["review.pptx"].segments)
    assert "track()" not in docs["news.html"].text and "harbour reopens" in docs["news.html"].text
    assert "html:web-page" in docs["news.html"].flags
    assert "Subject: Q3 launch" in docs["q3-launch.eml"].text


def test_the_corpus_keeps_locators_and_an_unchanged_mail_keeps_its_attachments(tmp_path):
    from app.services import ingesting, snapshot

    root = _folder(tmp_path / "docs")
    ingesting.ingest([root], "docs")
    _, docs = snapshot.load_documents("docs")
    sheet = next(d for d in docs if d.path.endswith("q3-launch.eml > budget.xlsx"))
    assert sheet.segments[0].locator.startswith("Opex!")
    again = ingesting.ingest([root], "docs")
    status = {f.path.split("/", 1)[-1]: f.status for f in again.files}
    assert status["q3-launch.eml"] == "unchanged"
    assert "removed" not in status.values()
    _, docs = snapshot.load_documents("docs")
    assert any(d.path.endswith("q3-launch.eml > budget.xlsx") for d in docs)


def _candidate(tmp_path: Path, rel: str, root: Path) -> Candidate:
    where = root / rel
    return Candidate(rel, where, str(root), where.stat().st_size)


def test_html_rule_code_project_stays_source_a_saved_page_is_a_web_page(tmp_path):
    repo = tmp_path / "site"
    (repo / "templates").mkdir(parents=True)
    (repo / "package.json").write_text("{}\n")
    (repo / "templates" / "index.html").write_bytes(PAGE)
    cand = _candidate(tmp_path, "templates/index.html", repo)
    assert html_is_source(cand, PAGE) == "package.json in the top folder"
    doc = process(cand, PAGE, ProcessOptions())
    assert isinstance(doc, Document) and doc.kind in ("code", "text")
    assert doc.text == PAGE.decode()  # as it is today: markup kept
    assert any(f.startswith("html:source-code (package.json") for f in doc.flags)

    docs = tmp_path / "papers"
    docs.mkdir()
    (docs / "news.html").write_bytes(PAGE)
    page = process(_candidate(tmp_path, "news.html", docs), PAGE, ProcessOptions())
    assert isinstance(page, Document) and page.kind == "web" and "html:web-page" in page.flags
    alone = Candidate("news.html", docs / "news.html", str(docs / "news.html"), len(PAGE))
    assert html_is_source(alone, PAGE) is None  # a file given on its own: a page
    template = b"<ul>{% for x in items %}<li>{{ x }}</li>{% endfor %}</ul>"
    assert html_is_source(alone, template) == "template syntax"


def test_office_suffixes_are_not_binary_and_a_corrupt_one_is_one_line(tmp_path):
    noise = NoiseFilter()
    for name in ("a.docx", "a.xlsx", "a.pptx", "a.epub", "a.eml", "a.mbox", "a.odt", "a.rtf"):
        assert noise.by_path(name, 1000) is None, name
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04 not really a zip \x00\x00")
    got = process(Candidate("broken.docx", broken, str(broken), 20), broken.read_bytes(),
                  ProcessOptions())
    assert isinstance(got, Skipped) and got.status == "error" and "\n" not in got.reason
