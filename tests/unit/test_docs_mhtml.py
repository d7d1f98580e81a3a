"""MHTML (issue 24): a saved page (.mhtml/.mht, MIME multipart/related) goes to the web-page
reader, cited by section; it is always a web page, even inside a code project."""

from __future__ import annotations

from email.charset import QP, Charset
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from ingest.documents import ProcessOptions, process
from ingest.filters import NoiseFilter
from ingest.types import Candidate, Document

PAGE = ("<html><head><title>Launch news</title><script>track()</script></head><body>"
        "<nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
        "<h1>Q3 launch</h1><p>The launch moves to Friday — café opening at noon.</p>"
        "<h2>Budget</h2><p>Opex rises by 4 % to {{ 1200 }} euros.</p></body></html>")


def _mhtml() -> bytes:
    related = MIMEMultipart("related", type="text/html")
    related["Subject"] = "Launch news"
    related["Snapshot-Content-Location"] = "https://example.com/news"
    utf8_qp = Charset("utf-8")
    utf8_qp.body_encoding = QP
    html = MIMEText(PAGE, "html", utf8_qp)
    html["Content-Location"] = "https://example.com/news"
    related.attach(html)
    image = MIMEImage(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "png")
    image["Content-Location"] = "https://example.com/logo.png"
    related.attach(image)
    data = related.as_bytes()
    assert b"quoted-printable" in data and b"caf=C3=A9" in data
    return data


def test_mhtml_is_a_web_page_cited_by_section_even_in_a_code_project(tmp_path: Path):
    repo = tmp_path / "site"
    repo.mkdir()
    (repo / "package.json").write_text("{}\n")  # a code project: its .html would be source
    data = _mhtml()
    for name in ("news.mhtml", "news.mht"):
        (repo / name).write_bytes(data)
        assert NoiseFilter().by_path(name, len(data)) is None
        doc = process(Candidate(name, repo / name, str(repo), len(data)), data,
                      ProcessOptions())
        assert isinstance(doc, Document) and doc.kind == "web", name
        by_locator = {s.locator: s.text for s in doc.segments}
        assert "café opening" in by_locator["§ Q3 launch"]
        assert "Opex rises by 4 %" in by_locator["§ Budget"]
        assert "track()" not in doc.text and "Home" not in doc.text
        assert "quoted-printable" not in doc.text and "PNG" not in doc.text
