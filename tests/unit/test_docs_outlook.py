"""Outlook .msg (issue 24): an OLE2 message read as mail (headers, body, attachments under the
mail); damaged or foreign files one line; a text .msg (a Tcl/gettext-like message catalog)
stays text. The .msg bytes come from tests/msg_writer.py, checked against olefile itself."""

from __future__ import annotations

import io
from pathlib import Path

import olefile
import pytest

from ingest import outlook
from ingest.documents import ProcessOptions, process
from ingest.filters import NoiseFilter
from ingest.outlook import read_msg
from ingest.types import Candidate, Document, IngestError, Skipped
from tests.msg_writer import compound, filetime, message_tree, msg


def _xlsx() -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Opex"
    ws.append(["Item", "Cost"])
    ws.append(["Rent", 1200])
    out = io.BytesIO()
    wb.save(out)
    assert len(out.getvalue()) >= 4096  # stored as is: no padding, no mini stream
    return out.getvalue()


def _process(tmp_path: Path, name: str, data: bytes) -> Document | Skipped:
    where = tmp_path / name
    where.write_bytes(data)
    return process(Candidate(name, where, str(where), len(data)), data, ProcessOptions())


def _message() -> bytes:
    return msg(subject="Résumé du lancement T3 ✓", sender="Ana Lima", address="ana@example.com",
               to="Bo <bo@example.com>", cc="Cy", body="Hello Bo,\r\n\r\nThe budget is attached.",
               sent=filetime(2026, 3, 2, 10), attachments=[("budget.xlsx", _xlsx())])


def test_the_writer_makes_a_compound_file_olefile_reads():
    data = _message()
    ole = olefile.OleFileIO(io.BytesIO(data))
    streams = ole.listdir()
    assert ["__substg1.0_0037001F"] in streams and ["__properties_version1.0"] in streams
    assert ["__attach_version1.0_#00000000", "__substg1.0_37010102"] in streams
    assert ole.openstream("__substg1.0_0037001F").read().decode("utf-16-le").rstrip(
        "\0") == "Résumé du lancement T3 ✓"


def test_message_read_as_mail_with_headers_body_and_attachment():
    got = read_msg(_message(), "x.msg")
    assert got.kind == "mail"
    head, body = got.segments
    assert (head.locator, head.span_kind, head.start, body.locator) == ("headers", "part", 1,
                                                                        "body")
    assert head.text == ("From: Ana Lima <ana@example.com>\nTo: Bo <bo@example.com>\nCc: Cy\n"
                         "Date: Mon, 02 Mar 2026 10:00:00 +0000\n"
                         "Subject: Résumé du lancement T3 ✓\nAttachments: budget.xlsx\n")
    assert body.text == "Hello Bo,\n\nThe budget is attached.\n"
    assert [n for n, _ in got.attachments] == ["budget.xlsx"]
    assert got.metadata["subject"] == "Résumé du lancement T3 ✓"


def test_attachment_ingested_under_the_mail_with_its_cell_range(tmp_path):
    doc = _process(tmp_path, "x.msg", _message())
    assert isinstance(doc, Document) and doc.kind == "mail"
    [sheet] = doc.children
    assert isinstance(sheet, Document) and sheet.path == "x.msg > budget.xlsx"
    assert sheet.kind == "sheet" and [s.locator for s in sheet.segments] == ["Opex!A1:B2"]
    assert "Rent" in sheet.text and "1200" in sheet.text


def test_html_only_body_is_markdown_without_markup():
    page = (b"<html><head><style>p{color:red}</style></head><body><h1>Launch</h1>"
            b"<p>Ship on <b>Friday</b>.</p><script>alert(1)</script></body></html>")
    got = read_msg(msg(subject="page", html=page.ljust(4096, b" ")), "p.msg")
    body = got.segments[1]
    assert body.locator == "body" and "Launch" in body.text and "Friday" in body.text
    assert "<" not in body.text and "alert" not in body.text and "color" not in body.text


def test_eight_bit_strings_use_the_code_page():
    got = read_msg(msg(ansi={0x0037: "Привет".encode("cp1251")}, codepage=1251, body="b"),
                   "r.msg")
    assert "Subject: Привет" in got.segments[0].text


def test_an_attached_message_is_read_as_a_mail_under_the_mail(tmp_path):
    note = b"the earlier plan: ship in May\n".ljust(4096, b"\n")
    inner = message_tree(subject="Old thread", sender="Bo", body="Earlier words.",
                         attachments=[("plan.txt", note)], header=24)
    doc = _process(tmp_path, "x.msg", msg(subject="Fwd", body="see below",
                                          embedded=[("Old thread", inner)]))
    assert isinstance(doc, Document) and "Attachments: Old thread.eml" in doc.text
    by_path = {c.path: c for c in doc.children}
    old = by_path["x.msg > Old thread.eml"]
    assert isinstance(old, Document) and old.kind == "mail"
    assert "Subject: Old thread" in old.text and "Earlier words." in old.text
    plan = by_path["x.msg > Old thread.eml > plan.txt"]
    assert isinstance(plan, Document) and "ship in May" in plan.text


def test_messages_nested_deep_are_bounded_and_flagged():
    inner = message_tree(subject="level 9", body="bottom", header=24)
    for level in range(8, 0, -1):
        inner = message_tree(subject=f"level {level}", body="b", header=24,
                             embedded=[(f"level {level + 1}", inner)])
    got = read_msg(msg(subject="top", body="b", embedded=[("level 1", inner)]), "deep.msg")
    assert [n for n, _ in got.attachments] == ["level 1.eml"]
    assert any(f"deeper than {outlook.MAX_EMBEDDED} levels" in f for f in got.flags)


def test_attachments_past_the_limit_are_flagged(monkeypatch):
    monkeypatch.setattr(outlook, "MAX_ATTACHMENTS", 2)
    files = [(f"n{i}.txt", f"note {i}\n".encode().ljust(4096, b" ")) for i in range(3)]
    got = read_msg(msg(subject="s", body="b", attachments=files), "m.msg")
    assert [n for n, _ in got.attachments] == ["n0.txt", "n1.txt"]
    assert "cut: 1 attachments after 2 not read" in got.flags


@pytest.mark.parametrize("data, says", [
    (b"::msgcat::mcset fr \"Open\" \"Ouvrir\"\n", "no OLE2"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "damaged"),
])
def test_foreign_and_damaged_bytes_are_one_line(data, says):
    with pytest.raises(IngestError) as err:
        read_msg(data, "bad.msg")
    assert says in str(err.value) and "\n" not in str(err.value)


def test_truncated_message_is_a_one_line_error(tmp_path):
    data = _message()
    got = _process(tmp_path, "cut.msg", data[:len(data) // 2])
    assert isinstance(got, Skipped) and got.status == "error"
    assert got.reason.startswith("cut.msg: a damaged Outlook message") and "\n" not in got.reason


def test_an_ole2_file_that_is_not_a_message_is_one_line():
    data = compound({"WordDocument": b"x" * 5000})
    with pytest.raises(IngestError, match="not an Outlook message"):
        read_msg(data, "w.msg")


def test_a_text_msg_catalog_is_text(tmp_path):
    catalog = (b'# Tcl message catalog\n::msgcat::mcset fr "Open" "Ouvrir"\n'
               b'::msgcat::mcset fr "Save" "Enregistrer"\n')
    assert NoiseFilter().by_path("library/msgs/fr.msg", len(catalog)) is None  # not "binary"
    doc = _process(tmp_path, "fr.msg", catalog)
    assert isinstance(doc, Document) and doc.kind in ("text", "code")
    assert doc.text == catalog.decode()
