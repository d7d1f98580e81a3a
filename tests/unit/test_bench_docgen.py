"""The document benchmark's generator makes files their own libraries open, with each needle
where its question says (benchmarks/docgen.py): a broken generator would make the scoutlens vs
markitdown figures and the recall meaningless."""

from __future__ import annotations

import email
import sys
import zipfile
from email import policy
from io import BytesIO
from pathlib import Path

import docx
import lxml.html
import openpyxl
import pptx
import pymupdf
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import docgen  # noqa: E402


def docx_text(data: bytes) -> str:
    doc = docx.Document(BytesIO(data))
    cells = [c.text for t in doc.tables for r in t.rows for c in r.cells]
    return "\n".join([p.text for p in doc.paragraphs] + cells)


def pptx_text(data: bytes) -> str:
    prs = pptx.Presentation(BytesIO(data))
    assert 15 <= len(prs.slides) <= 40
    assert any(sh.has_table for s in prs.slides for sh in s.shapes)
    return "\n".join(s.notes_slide.notes_text_frame.text for s in prs.slides
                     if s.has_notes_slide)


def xlsx_text(data: bytes) -> str:
    wb = openpyxl.load_workbook(BytesIO(data), read_only=True)
    states = {ws.title: ws.sheet_state for ws in wb.worksheets}
    assert states == {"Budget": "visible", "Actuals": "visible", "Forecast": "visible",
                      "Archive": "hidden"}
    rows = [r for name in ("Budget", "Actuals", "Forecast") for r in wb[name].values]
    assert 2_000 <= len(rows) <= 20_010
    return "\n".join(" ".join(str(v) for v in r) for r in rows)


def html_text(data: bytes) -> str:
    tree = lxml.html.fromstring(data)
    assert tree.xpath("//nav") and tree.xpath("//script") and tree.xpath("//footer")
    assert tree.xpath("//article//table") and tree.xpath("//article//h2")
    return tree.xpath("string(//article)")


def eml_text(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None
    assert "—" in str(msg["Subject"])  # non-ASCII: RFC 2047 on the wire
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    part = attachments[0]
    if part.get_filename().endswith(".docx"):
        return docx_text(part.get_content())
    return xlsx_text_small(part.get_content())


def xlsx_text_small(data: bytes) -> str:
    ws = openpyxl.load_workbook(BytesIO(data)).active
    return "\n".join(" ".join(str(v) for v in r) for r in ws.values)


def epub_text(data: bytes) -> str:
    with zipfile.ZipFile(BytesIO(data)) as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    book = pymupdf.open(stream=data, filetype="epub")
    assert book.chapter_count == 10
    return "\n".join(page.get_text() for page in book)


READERS = {"docx": docx_text, "pptx": pptx_text, "xlsx": xlsx_text, "html": html_text,
           "eml": eml_text, "epub": epub_text}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[docgen.Needle]]:
    root = tmp_path_factory.mktemp("docs") / "corpus"
    return root, docgen.generate(root, n=6, seed=3, needles_per_kind=1)


def test_every_kind_opens_with_its_library(corpus: tuple[Path, list[docgen.Needle]]) -> None:
    root, _ = corpus
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert {p.suffix[1:] for p in files} == set(docgen.MIX)  # the answers are kept outside
    for path in files:
        assert READERS[path.suffix[1:]](path.read_bytes()).strip(), path


def test_each_needle_is_in_its_file_and_nowhere_else(
        corpus: tuple[Path, list[docgen.Needle]]) -> None:
    root, needles = corpus
    assert sorted(n.kind for n in needles) == sorted(docgen.MIX)
    texts = {str(p.relative_to(root)): READERS[p.suffix[1:]](p.read_bytes())
             for p in root.rglob("*") if p.is_file()}
    for needle in needles:
        assert needle.found_in(texts[needle.file]), needle
        assert needle.place not in needle.file
        assert [f for f, t in texts.items() if needle.place in t] == [needle.file]


def test_same_seed_same_documents(tmp_path: Path) -> None:
    plan = docgen.plan(40, seed=5, needles_per_kind=2)
    assert plan == docgen.plan(40, seed=5, needles_per_kind=2)
    assert plan != docgen.plan(40, seed=6, needles_per_kind=2)
    for kind in ("docx", "html", "eml"):
        job = next(j for j in plan if j[0] == kind and j[3] is not None)
        texts = []
        for run in ("a", "b"):
            docgen.make_file((tmp_path / run, 5, *job))
            texts.append(READERS[kind]((tmp_path / run / job[2]).read_bytes()))
        assert texts[0] == texts[1]
