"""Deterministic analyst documents for bench_documents.py: Word, PowerPoint, Excel, saved web
pages, mails with an attachment and EPUBs, made with the libraries that read them (python-docx,
python-pptx, openpyxl, the standard library's email and zipfile) at realistic sizes.

Some files hold a "needle": one fact in one place (a Word table cell, a slide's speaker notes, a
spreadsheet cell among thousands, a web page's section, a mail attachment's cell, an e-book
chapter) with a plain-words question whose answer is only there. Needle places are drawn from a
list the filler never uses, so a question has exactly one right place in the whole corpus.

Each file's content depends only on (seed, kind, ordinal), so files can be made in any order,
in parallel, and a run with the same seed makes the same documents.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

#: kind -> share of the files (300 docx, 200 pptx, 150 xlsx, 200 html, 100 eml, 50 epub of 1,000)
MIX = {"docx": 0.30, "pptx": 0.20, "xlsx": 0.15, "html": 0.20, "eml": 0.10, "epub": 0.05}
FIXED_TIME = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

_WORDS = (
    "account action agreement analysis annual approval asset audit balance baseline benefit "
    "budget capacity capital channel client commitment compliance contract cost coverage "
    "customer deadline delivery demand department deployment design development discount "
    "estimate exposure facility feedback finance forecast framework funding governance growth "
    "headcount incident initiative inventory investment invoice launch liability licence "
    "logistics maintenance margin market measure milestone model objective operation option "
    "order outcome partner payment performance pipeline plan policy portfolio position pricing "
    "priority procurement product programme project proposal quality quarter rate region "
    "renewal report requirement resource revenue review risk roadmap schedule scope segment "
    "service shipment staff standard strategy supplier support target team tender timeline "
    "training transition update vendor volume warranty workflow workload")
WORDS = tuple(_WORDS.split())
VERBS = ("approved", "reviewed", "delayed", "extended", "reduced", "raised", "confirmed",
         "planned", "assessed", "covered", "moved", "shared", "tracked", "signed", "closed")
ADJ = ("current", "revised", "quarterly", "regional", "internal", "external", "critical",
       "shared", "pending", "expected", "initial", "final", "operating", "central", "local")
FILLER_SITES = ("North depot", "Unit 4", "Main office", "East yard", "Harbour store",
                "Plant B", "Riverside lab", "Hall 7", "West annex", "Old mill", "Dock 12")
#: needle places: never in the filler, so each question has one right place
PLACES = (
    "Lisbon", "Tromso", "Aalborg", "Bergen", "Porto", "Halden", "Ghent", "Lund", "Tartu",
    "Bilbao", "Split", "Kaunas", "Linz", "Graz", "Bremen", "Malmo", "Oulu", "Cork", "Galway",
    "Bruges", "Utrecht", "Leuven", "Brno", "Olomouc", "Szeged", "Debrecen", "Ljubljana",
    "Maribor", "Trieste", "Verona", "Parma", "Modena", "Granada", "Cadiz", "Vigo", "Braga",
    "Coimbra", "Faro", "Nantes", "Rennes", "Dijon", "Nancy", "Metz", "Lille", "Aarhus",
    "Odense", "Esbjerg", "Stavanger", "Bodo", "Umea", "Lulea", "Vaasa", "Turku", "Riga",
    "Liepaja", "Gdansk", "Poznan", "Wroclaw", "Krakow", "Plovdiv")
DOG_NAMES = ("Biscuit", "Marlowe", "Pepperpot", "Tansy", "Quillon", "Bramble", "Juniper",
             "Scrimshaw", "Tollef", "Clementine", "Wicket", "Saffron", "Barnaby", "Moss")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


@dataclass(frozen=True)
class Needle:
    """One fact in one place of one file, and the question that asks for it."""

    kind: str
    file: str  # relative to the corpus folder
    where: str  # the place, in words: "table cell", "speaker notes", ...
    question: str
    answers: tuple[str, ...]  # any of these in the context counts as found
    place: str = ""  # the needle's place name: only the needle holds it, so it must be there too

    def found_in(self, text: str) -> bool:
        return self.place in text and any(a in text for a in self.answers)


# -- filler text ---------------------------------------------------------------------------

def sentence(rng: random.Random) -> str:
    words = [rng.choice(ADJ), rng.choice(WORDS), "was", rng.choice(VERBS)]
    words += [rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(ADJ)
              for _ in range(rng.randint(6, 14))]
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random, sentences: tuple[int, int] = (4, 8)) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(*sentences)))


def title(rng: random.Random, words: int = 3) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).title()


def money(rng: random.Random) -> str:
    return f"{rng.randint(1_000, 900_000):,}"


# -- needles -------------------------------------------------------------------------------

def needle_for(kind: str, rng: random.Random, place: str) -> dict:
    """The fact a file of `kind` plants: its question, answers and the text/cells it needs."""
    if kind == "docx":
        rent = rng.randint(120, 990) * 1_000 + rng.randint(1, 999)
        return {"where": "table cell", "row": [f"{place} warehouse", "2025-03-01",
                                               f"{rent:,} euros", "6 months"],
                "question": f"What is the annual rent of the {place} warehouse?",
                "answers": (f"{rent:,}",)}
    if kind == "pptx":
        signed = rng.randint(1_100, 9_800)
        return {"where": "speaker notes",
                "text": f"Tell the board that the {place} pilot signed {signed:,} customers in "
                        "its first month, ahead of plan.",
                "question": f"How many customers did the {place} pilot sign in its first month?",
                "answers": (f"{signed:,}", str(signed))}
    if kind == "xlsx":
        amount = rng.randint(10_000, 99_000) + rng.randint(1, 9) * 7
        return {"where": "sheet cell", "row": [f"{place} office", "Travel", 2026, amount],
                "question": f"What travel budget did the {place} office get for 2026?",
                "answers": (str(amount), f"{amount:,}")}
    if kind == "html":
        day, month = rng.randint(2, 28), rng.choice(MONTHS)
        return {"where": "web page section",
                "text": f"The {place} ferry terminal will reopen on {day} {month} after "
                        f"repairs costing {rng.randint(2, 9)}.{rng.randint(1, 9)} million euros.",
                "question": f"When will the {place} ferry terminal reopen?",
                "answers": (f"{day} {month}",)}
    if kind == "eml":
        pct = f"{rng.randint(5, 30)}.{rng.choice((25, 5, 75))}%"
        return {"where": "attachment cell", "row": [f"{place} distributor", pct, "net 45"],
                "question": f"What discount was agreed for the {place} distributor?",
                "answers": (pct,)}
    if kind == "epub":
        dog = rng.choice(DOG_NAMES)
        return {"where": "e-book chapter",
                "text": f"The keeper of the {place} lighthouse called his old dog {dog}, and "
                        "the dog slept by the lamp every night of the storm.",
                "question": f"What did the keeper of the {place} lighthouse call his dog?",
                "answers": (dog,)}
    raise ValueError(kind)


# -- makers: (rng, needle or None) -> bytes --------------------------------------------------

def make_docx(rng: random.Random, needle: dict | None) -> bytes:
    """10-30 pages: headings, bullet lists, two or three tables, body paragraphs."""
    from docx import Document

    doc = Document()
    doc.core_properties.created = doc.core_properties.modified = FIXED_TIME.replace(tzinfo=None)
    doc.add_heading(title(rng, 4), 0)
    pages = rng.randint(10, 30)
    sections = max(3, pages // 2)
    table_at = set(rng.sample(range(sections), min(3, sections)))
    needle_at = rng.choice(sorted(table_at))
    for s in range(sections):
        doc.add_heading(f"{s + 1}. {title(rng)}", 1)
        for _ in range(rng.randint(5, 9)):  # ~ 2 pages a section: ~900 words
            doc.add_paragraph(paragraph(rng, (5, 9)))
        if rng.random() < 0.5:
            doc.add_heading(title(rng), 2)
            for _ in range(rng.randint(3, 6)):
                doc.add_paragraph(sentence(rng), style="List Bullet")
        doc.add_paragraph(paragraph(rng, (5, 9)))
        if s in table_at:
            rows = [[rng.choice(FILLER_SITES), f"202{rng.randint(3, 6)}-0{rng.randint(1, 9)}-01",
                     f"{money(rng)} euros", f"{rng.randint(1, 12)} months"]
                    for _ in range(rng.randint(4, 12))]
            if needle is not None and s == needle_at:
                rows.insert(rng.randint(0, len(rows)), needle["row"])
            table = doc.add_table(rows=1, cols=4)
            head = ("Site", "Lease start", "Annual rent", "Notice period")
            for cell, text in zip(table.rows[0].cells, head, strict=True):
                cell.text = text
            for row in rows:
                for cell, text in zip(table.add_row().cells, row, strict=True):
                    cell.text = text
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def make_pptx(rng: random.Random, needle: dict | None) -> bytes:
    """15-40 slides: title and bullets, speaker notes on most, one table slide."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    prs.core_properties.created = prs.core_properties.modified = FIXED_TIME.replace(tzinfo=None)
    slides = rng.randint(15, 40)
    table_slide = rng.randrange(1, slides)
    needle_slide = rng.randrange(1, slides)
    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = title(rng, 4)
    first.placeholders[1].text = f"Quarterly review, {rng.choice(MONTHS)} 2026"
    for n in range(1, slides):
        if n == table_slide:
            slide = prs.slides.add_slide(prs.slide_layouts[5])
            slide.shapes.title.text = f"{title(rng)} by site"
            rows = rng.randint(4, 8)
            table = slide.shapes.add_table(rows + 1, 3, Inches(0.5), Inches(1.5), Inches(9),
                                           Inches(0.4) * (rows + 1)).table
            for c, head in enumerate(("Site", "Budget", "Status")):
                table.cell(0, c).text = head
            for r in range(1, rows + 1):
                for c, text in enumerate((rng.choice(FILLER_SITES), money(rng),
                                          rng.choice(VERBS))):
                    table.cell(r, c).text = text
        else:
            slide = prs.slides.add_slide(prs.slide_layouts[1])
            slide.shapes.title.text = title(rng)
            body = slide.placeholders[1].text_frame
            body.text = sentence(rng)
            for _ in range(rng.randint(2, 5)):
                body.add_paragraph().text = sentence(rng)
        notes = [paragraph(rng, (2, 5))] if rng.random() < 0.8 else []
        if needle is not None and n == needle_slide:
            notes.insert(rng.randint(0, len(notes)), needle["text"])
        if notes:
            slide.notes_slide.notes_text_frame.text = "\n".join(notes)
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def _sheet_rows(rng: random.Random, count: int) -> list[list]:
    return [[rng.choice(FILLER_SITES), rng.choice(WORDS).title(), rng.randint(2023, 2027),
             rng.randint(100, 99_999), rng.choice(ADJ)] for _ in range(count)]


def make_xlsx(rng: random.Random, needle: dict | None) -> bytes:
    """Three visible sheets and a hidden one, 2,000-20,000 rows in all (log-uniform)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.created = wb.properties.modified = FIXED_TIME.replace(tzinfo=None)
    total = int(2_000 * 10 ** rng.random())
    needle_sheet = rng.randrange(3)
    for s, name in enumerate(("Budget", "Actuals", "Forecast")):
        ws = wb.create_sheet(name)
        ws.append(["Office", "Category", "Year", "Amount", "Status"])
        rows = _sheet_rows(rng, total // 3)
        if needle is not None and s == needle_sheet:
            rows.insert(rng.randint(0, len(rows)), [*needle["row"], "approved"])
        for row in rows:
            ws.append(row)
    hidden = wb.create_sheet("Archive")
    hidden.sheet_state = "hidden"
    hidden.append(["Office", "Category", "Year", "Amount", "Status"])
    for row in _sheet_rows(rng, 200):
        hidden.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


NAV = "".join(f'<li><a href="/section/{w}">{w.title()}</a></li>' for w in WORDS[:40])
SCRIPT = ("<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push("
          "arguments)}gtag('js',new Date());" + "".join(f"var cfg{i}={{" + ",".join(
              f'"{w}":"{w * 3}"' for w in WORDS) + "};" for i in range(4)) + "</script>")
STYLE = "<style>" + "".join(f".c-{w}{{margin:0 auto;padding:4px;color:#333}}"
                            for w in WORDS) + "</style>"


def make_html(rng: random.Random, needle: dict | None) -> bytes:
    """A saved news page: head with styles and scripts, menu, article (headings, a table,
    800-2,500 words), related links, cookie banner, footer."""
    sections = rng.randint(4, 9)
    needle_at = rng.randrange(sections)
    parts = [f"<h1>{title(rng, 5)}</h1>",
             f'<p class="byline">By {title(rng, 2)} | 2026-0{rng.randint(1, 9)}-'
             f"{rng.randint(10, 28)}</p>", f"<p><strong>{paragraph(rng, (2, 3))}</strong></p>"]
    for s in range(sections):
        parts.append(f"<h2>{title(rng)}</h2>")
        paras = [paragraph(rng, (3, 7)) for _ in range(rng.randint(1, 3))]
        if needle is not None and s == needle_at:
            paras.insert(rng.randint(0, len(paras)), needle["text"])
        parts += [f"<p>{p}</p>" for p in paras]
        if s == 1:
            cells = "".join(f"<tr><td>{rng.choice(FILLER_SITES)}</td><td>{money(rng)}</td>"
                            f"<td>{rng.choice(VERBS)}</td></tr>" for _ in range(rng.randint(3, 8)))
            parts.append(f"<table><thead><tr><th>Site</th><th>Cost</th><th>Status</th></tr>"
                         f"</thead><tbody>{cells}</tbody></table>")
        if rng.random() < 0.3:
            parts.append("<ul>" + "".join(f"<li>{sentence(rng)}</li>" for _ in range(4))
                         + "</ul>")
    related = "".join(f'<li><a href="/story/{rng.randint(10**5, 10**6)}">{title(rng, 5)}</a></li>'
                      for _ in range(12))
    page = (
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title(rng)} | "
        f"The Daily Ledger</title>{STYLE}{SCRIPT}</head><body>"
        f'<header><nav class="menu"><ul>{NAV}</ul></nav></header>'
        f'<div class="cookie" style="display:none">We use cookies. <button>Accept</button></div>'
        f"<main><article>{''.join(parts)}</article>"
        f'<aside><h3>Related</h3><ul>{related}</ul></aside></main>'
        f"<footer><p>(c) 2026 The Daily Ledger. All rights reserved.</p><ul>{NAV}</ul></footer>"
        f"{SCRIPT}</body></html>")
    return page.encode()


def _attachment_xlsx(rng: random.Random, needle: dict | None) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.properties.created = wb.properties.modified = FIXED_TIME.replace(tzinfo=None)
    ws = wb.active
    ws.title = "Terms"
    ws.append(["Distributor", "Discount", "Payment terms"])
    rows = [[f"{rng.choice(FILLER_SITES)} distributor", f"{rng.randint(1, 30)}%",
             f"net {rng.choice((30, 60, 90))}"] for _ in range(rng.randint(10, 40))]
    if needle is not None:
        rows.insert(rng.randint(0, len(rows)), needle["row"])
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _attachment_docx(rng: random.Random) -> bytes:
    from docx import Document

    doc = Document()
    doc.core_properties.created = doc.core_properties.modified = FIXED_TIME.replace(tzinfo=None)
    doc.add_heading(title(rng), 1)
    for _ in range(rng.randint(3, 8)):
        doc.add_paragraph(paragraph(rng))
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
DOCX_TYPE = ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document")


def make_eml(rng: random.Random, needle: dict | None) -> bytes:
    """A multipart mail: text/plain and an HTML alternative, one attachment (xlsx or docx),
    a non-ASCII subject (RFC 2047 on the wire)."""
    msg = EmailMessage()
    msg["From"] = f"{title(rng, 2)} <{rng.choice(WORDS)}@ledger.example>"
    msg["To"] = f"{title(rng, 2)} <{rng.choice(WORDS)}@partner.example>"
    msg["Subject"] = f"Q{rng.randint(1, 4)} {rng.choice(WORDS)} — {title(rng)}"
    msg["Date"] = format_datetime(FIXED_TIME.replace(day=rng.randint(1, 28)))
    msg["Message-ID"] = f"<{rng.getrandbits(64):x}@ledger.example>"
    paras = [paragraph(rng) for _ in range(rng.randint(2, 6))]
    msg.set_content("Hello,\n\n" + "\n\n".join(paras) + "\n\nBest regards\n")
    msg.add_alternative("<html><body><p>Hello,</p>" + "".join(f"<p>{p}</p>" for p in paras)
                        + "<p>Best regards</p></body></html>", subtype="html")
    if needle is not None or rng.random() < 0.5:
        msg.add_attachment(_attachment_xlsx(rng, needle), maintype=XLSX_TYPE[0],
                           subtype=XLSX_TYPE[1], filename="terms.xlsx")
    else:
        msg.add_attachment(_attachment_docx(rng), maintype=DOCX_TYPE[0], subtype=DOCX_TYPE[1],
                           filename="notes.docx")
    return msg.as_bytes()


def _xhtml(head: str, body: str) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
            f'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>{head}</title></head>'
            f"<body>{body}</body></html>")


CONTAINER = ('<?xml version="1.0"?><container version="1.0" '
             'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
             '<rootfile full-path="OEBPS/content.opf" '
             'media-type="application/oebps-package+xml"/></rootfiles></container>')


def make_epub(rng: random.Random, needle: dict | None) -> bytes:
    """EPUB 3 (with an NCX for older readers): 10 chapters of 1,000-4,000 words."""
    book = title(rng, 3)
    needle_at = rng.randrange(10)
    chapters = []
    for c in range(10):
        paras = [paragraph(rng, (5, 10)) for _ in range(rng.randint(8, 30))]
        if needle is not None and c == needle_at:
            paras.insert(rng.randint(0, len(paras)), needle["text"])
        head = title(rng)
        chapters.append((head, _xhtml(head, f"<h1>Chapter {c + 1}: {head}</h1>"
                                      + "".join(f"<p>{p}</p>" for p in paras))))
    uid = f"urn:uuid:{rng.getrandbits(128):032x}"
    items = "".join(f'<item id="ch{i}" href="ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                    for i in range(10))
    spine = "".join(f'<itemref idref="ch{i}"/>' for i in range(10))
    opf = ('<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" '
           'version="3.0" unique-identifier="uid"><metadata '
           'xmlns:dc="http://purl.org/dc/elements/1.1/">'
           f'<dc:identifier id="uid">{uid}</dc:identifier><dc:title>{book}</dc:title>'
           f"<dc:creator>{title(rng, 2)}</dc:creator><dc:language>en</dc:language>"
           '<meta property="dcterms:modified">2026-03-02T09:30:00Z</meta></metadata><manifest>'
           '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
           'properties="nav"/><item id="ncx" href="toc.ncx" '
           f'media-type="application/x-dtbncx+xml"/>{items}</manifest>'
           f'<spine toc="ncx">{spine}</spine></package>')
    nav = _xhtml("Contents", '<nav epub:type="toc"><ol>' + "".join(
        f'<li><a href="ch{i}.xhtml">{h}</a></li>' for i, (h, _) in enumerate(chapters))
        + "</ol></nav>")
    ncx = ('<?xml version="1.0" encoding="utf-8"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/"'
           f' version="2005-1"><head><meta name="dtb:uid" content="{uid}"/></head>'
           f"<docTitle><text>{book}</text></docTitle><navMap>" + "".join(
               f'<navPoint id="n{i}" playOrder="{i + 1}"><navLabel><text>{h}</text></navLabel>'
               f'<content src="ch{i}.xhtml"/></navPoint>' for i, (h, _) in enumerate(chapters))
           + "</navMap></ncx>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype", (2026, 3, 2, 9, 30, 0)), "application/epub+zip",
                    compress_type=zipfile.ZIP_STORED)
        members = [("META-INF/container.xml", CONTAINER), ("OEBPS/content.opf", opf),
                   ("OEBPS/nav.xhtml", nav), ("OEBPS/toc.ncx", ncx)]
        members += [(f"OEBPS/ch{i}.xhtml", x) for i, (_, x) in enumerate(chapters)]
        for name, text in members:
            zf.writestr(zipfile.ZipInfo(name, (2026, 3, 2, 9, 30, 0)), text,
                        compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


MAKERS: dict[str, Callable[[random.Random, dict | None], bytes]] = {
    "docx": make_docx, "pptx": make_pptx, "xlsx": make_xlsx, "html": make_html,
    "eml": make_eml, "epub": make_epub}
STEMS = {"docx": "report", "pptx": "review", "xlsx": "budget", "html": "news", "eml": "mail",
         "epub": "book"}


# -- the corpus ----------------------------------------------------------------------------

def plan(n: int, seed: int, needles_per_kind: int) -> list[tuple[str, int, str, dict | None]]:
    """(kind, ordinal, relative path, needle spec or None) for every file, in a fixed order."""
    counts = {kind: max(1, round(n * share)) for kind, share in MIX.items()}
    places = list(PLACES)
    random.Random(seed).shuffle(places)
    out = []
    for kind, count in counts.items():
        per = min(needles_per_kind, count)
        chosen = {round(i * count / per) for i in range(per)}
        for i in range(count):
            spec = None
            if i in chosen:
                place = places.pop()
                spec = needle_for(kind, random.Random(f"{seed}:{kind}:{i}:needle"), place)
                spec["place"] = place
            out.append((kind, i, f"{kind}/{STEMS[kind]}-{i + 1:04d}.{kind}", spec))
    return out


def make_file(job: tuple[Path, int, str, int, str, dict | None]) -> int:
    """Write one planned file; its size in bytes."""
    root, seed, kind, ordinal, rel, spec = job
    data = MAKERS[kind](random.Random(f"{seed}:{kind}:{ordinal}"), spec)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def generate(root: Path, n: int = 1_000, seed: int = 0, needles_per_kind: int = 8,
             processes: int = 1) -> list[Needle]:
    """Make the corpus under `root` (kept if its manifest says it was made with these
    arguments) and return its needles; <root>.needles.json beside it holds them too (outside
    the corpus: the answers must not be ingested with it)."""
    manifest = root.parent / f"{root.name}.needles.json"
    args = {"n": n, "seed": seed, "needles_per_kind": needles_per_kind}
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved["args"] == args:
            return [Needle(**{**x, "answers": tuple(x["answers"])}) for x in saved["needles"]]
    planned = plan(n, seed, needles_per_kind)
    jobs = [(root, seed, kind, i, rel, spec) for kind, i, rel, spec in planned]
    if processes > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(processes) as pool:
            list(pool.imap_unordered(make_file, jobs, chunksize=4))
    else:
        for job in jobs:
            make_file(job)
    needles = [Needle(kind, rel, spec["where"], spec["question"], tuple(spec["answers"]),
                      spec["place"])
               for kind, _, rel, spec in planned if spec is not None]
    root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"args": args, "needles": [asdict(x) for x in needles]},
                                   indent=1))
    return needles
