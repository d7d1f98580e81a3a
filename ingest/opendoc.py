"""OpenDocument text and presentations (.odt, .odp) and RTF (.rtf), cited like Word and
PowerPoint files: "notes.odt §2 Budget ¶3", "talk.odp slide 4 (notes)", "memo.rtf ¶1-¶20".

OpenDocument files are zips: the archive limits apply first, then content.xml is parsed through
`safe_xml` (no entities). RTF is plain text with control words: striprtf reads it, under a size
cap since it works on the whole text at once. Pictures (draw:image) come back as
`StructuredRead.images`: "notes.odt §2 Budget figure 1" after the part holding their paragraph,
"talk.odp slide 4 picture 1" after the slide's text; one drawn smaller than MIN_PICTURE_CM2 is
an icon and is not read.
"""

from __future__ import annotations

import re

from ingest.containers import container_flags, markdown_table, open_zip, read_part, safe_xml
from ingest.types import EmbeddedImage, IngestError, StructuredRead
from ingest.word import Block, block_part, heading_prefix, part_segments, section_parts

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xlink": "http://www.w3.org/1999/xlink",
}
MAX_RTF_BYTES = 32 * 1024**2
_MAX_REPEAT = 64  # a cell repeated a million times (a common ODS/ODT filler) is read this often
_MAX_DEPTH = 40
_UNIT = re.compile(r"^\s*(-?[0-9.]+)")
_LENGTH = re.compile(r"^\s*([0-9.]+)\s*(cm|mm|in|pt|pc|px)?\s*$")
_CM = {"cm": 1.0, "mm": 0.1, "in": 2.54, "pt": 2.54 / 72, "pc": 2.54 / 6, "px": 2.54 / 96}
MAX_PICTURES = 200  # distinct pictures read out of one file
MIN_PICTURE_CM2 = 5.0  # ~1% of a page or slide: a picture drawn smaller is an icon


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return "{" + _NS[prefix] + "}" + local


_T = {n: _q(n) for n in (
    "text:h", "text:p", "text:list", "text:list-item", "text:list-header", "text:s",
    "text:tab", "text:line-break", "text:note", "text:note-citation", "text:note-body",
    "text:section", "text:tracked-changes", "text:changed-region", "text:deletion",
    "text:change", "text:change-start", "text:change-end", "text:soft-page-break",
    "office:annotation", "office:annotation-end", "office:text", "office:presentation",
    "office:body", "table:table", "table:table-row", "table:table-cell",
    "table:covered-table-cell", "draw:page", "draw:frame", "draw:g", "draw:text-box",
    "presentation:notes", "dc:creator", "svg:desc", "svg:title", "draw:image")}


class _Reader:
    """Inline text of ODF paragraphs, collecting notes and comments and marking changes."""

    def __init__(self, root) -> None:
        self.notes: list[tuple[str, str]] = []
        self.comments: list[tuple[str, str]] = []
        self.flags: set[str] = set()
        self.deletions: dict[str, str] = {}
        self.inserted: set[str] = set()
        for region in root.iter(_T["text:changed-region"]):
            ident = region.get(_q("text:id")) or region.get(
                "{http://www.w3.org/XML/1998/namespace}id", "")
            deletion = region.find(_T["text:deletion"])
            if deletion is not None:
                self.deletions[ident] = " ".join(
                    t for t in (self.paragraph(p) for p in deletion.iter(_T["text:p"])) if t)
            else:
                self.inserted.add(ident)

    def paragraph(self, el) -> str:
        out: list[str] = []
        self._inline(el, out, 0)
        return "".join(out).strip()

    def _inline(self, el, out: list[str], depth: int) -> None:
        if el.text:
            out.append(el.text)
        for child in el:
            self._child(child, out, depth)
            if child.tail:
                out.append(child.tail)

    def _child(self, child, out: list[str], depth: int) -> None:
        tag = child.tag
        if tag == _T["text:s"]:
            count = child.get(_q("text:c"), "1")
            out.append(" " * min(int(count) if count.isdigit() else 1, 8))
        elif tag == _T["text:tab"]:
            out.append("\t")
        elif tag == _T["text:line-break"]:
            out.append("\n")
        elif tag == _T["text:note"]:
            self._note(child, out)
        elif tag == _T["office:annotation"]:
            self._comment(child)
        elif tag in (_T["text:change"], _T["text:change-start"], _T["text:change-end"]):
            self._change(child, out)
        elif tag not in (_T["office:annotation-end"], _T["text:soft-page-break"]) \
                and depth < _MAX_DEPTH:
            self._inline(child, out, depth + 1)

    def _note(self, note, out: list[str]) -> None:
        citation = note.find(_T["text:note-citation"])
        body = note.find(_T["text:note-body"])
        ident = "".join(citation.itertext()).strip() if citation is not None else ""
        ident = ident or str(len(self.notes) + 1)
        out.append(f"[^{ident}]")
        if body is not None:
            text = " ".join(t for t in (self.paragraph(p) for p in body.iter(_T["text:p"])) if t)
            if text:
                self.notes.append((f"footnote {ident}", f"[^{ident}]: {text}\n"))

    def _comment(self, ann) -> None:
        creator = ann.find(_T["dc:creator"])
        author = " ".join(("".join(creator.itertext()) if creator is not None else "").split())
        text = " ".join(t for t in (self.paragraph(p) for p in ann.iter(_T["text:p"])) if t)
        if text:
            self.flags.add("comments")
            self.comments.append((f"comment {len(self.comments) + 1}",
                                  f"[comment by {author[:80] or 'unknown'}] {text}\n"))

    def _change(self, mark, out: list[str]) -> None:
        ident = mark.get(_q("text:change-id"), "")
        self.flags.add("tracked-changes")
        if mark.tag == _T["text:change"] and self.deletions.get(ident):
            out.append(f"[deleted] {self.deletions[ident]} [/deleted]")
        elif ident in self.inserted:
            out.append("[inserted] " if mark.tag == _T["text:change-start"] else " [/inserted]")

    def table(self, tbl) -> str:
        rows = []
        for row in tbl.iter(_T["table:table-row"]):
            if len(rows) >= 10_000:
                break
            cells: list[str] = []
            for cell in row:
                if cell.tag not in (_T["table:table-cell"], _T["table:covered-table-cell"]):
                    continue
                text = " ".join(t for t in (self.paragraph(p) for p in cell.iter(_T["text:p"]))
                                if t)
                repeat = cell.get(_q("table:number-columns-repeated"), "1")
                cells += [text] * min(int(repeat) if repeat.isdigit() else 1, _MAX_REPEAT)
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        return markdown_table(r + [""] * (width - len(r)) for r in rows).rstrip("\n")

    def blocks(self, el, depth: int = 0, list_level: int = -1) -> list[tuple[str, object]]:
        """("h<level>", text), ("p", text), ("li", text) and ("table", markdown) in order."""
        out: list[tuple[str, object]] = []
        if depth > _MAX_DEPTH:
            return out
        for child in el:
            tag = child.tag
            if tag == _T["text:h"]:
                level = child.get(_q("text:outline-level"), "1")
                out.append((f"h{level if level.isdigit() else 1}", self.paragraph(child)))
            elif tag == _T["text:p"]:
                kind = "li" if list_level >= 0 else "p"
                out.append((kind, ("  " * list_level + "- " if kind == "li" else "")
                            + self.paragraph(child)))
            elif tag == _T["text:list"]:
                out += self.blocks(child, depth + 1, list_level + 1)
            elif tag == _T["table:table"]:
                out.append(("table", self.table(child)))
            elif tag == _T["draw:image"]:  # a frame anchored to the page, not a paragraph
                out.append(("img", child))
            elif tag not in (_T["text:tracked-changes"], _T["office:annotation"]):
                out += self.blocks(child, depth + 1, list_level)
            if tag in (_T["text:h"], _T["text:p"], _T["table:table"]):  # pictures in its text
                out += [("img", image) for image in child.iter(_T["draw:image"])]
        return [(k, t) for k, t in out
                if k == "img" or (str(t).strip() and str(t).strip() != "-")]


def _open(data: bytes, name: str):
    zf = open_zip(data, name)
    flags = container_flags(zf)
    if "META-INF/manifest.xml" in zf.NameToInfo and b"encryption-data" in read_part(
            zf, "META-INF/manifest.xml", name):
        raise IngestError(f"{name}: password-protected")
    root = safe_xml(read_part(zf, "content.xml", name), name)
    meta: dict[str, str] = {}
    try:
        title = safe_xml(read_part(zf, "meta.xml", name), name).find(".//" + _q("dc:title"))
    except IngestError:  # no meta.xml, or a damaged one: the text is still there
        title = None
    if title is not None and "".join(title.itertext()).strip():
        meta["title"] = " ".join("".join(title.itertext()).split())[:300]
    return zf, root, flags, meta


def _cm2(image) -> float | None:
    """The area its frame draws a draw:image over, in cm²; None when the frame does not say."""
    frame = image.getparent()
    sizes = []
    for attr in ("svg:width", "svg:height"):
        match = _LENGTH.match(frame.get(_q(attr), "") if frame is not None else "")
        if match is None:
            return None
        try:
            sizes.append(float(match.group(1)) * _CM[match.group(2) or "cm"])
        except ValueError:
            return None
    return sizes[0] * sizes[1]


class _Pictures:
    """The package's pictures as embedded images, each part read once, at most MAX_PICTURES
    distinct ones; a picture outside the package is flagged, never fetched."""

    def __init__(self, zf, what: str, flags: list[str]) -> None:
        self.zf, self.what, self.flags = zf, what, flags
        self.read: dict[str, bytes | None] = {}
        self.images: list[EmbeddedImage] = []

    def add(self, image, after: int, locator: str) -> None:
        href = image.get(_q("xlink:href"), "").strip()
        path = href[2:] if href.startswith("./") else href
        area = _cm2(image)
        if not path or (area is not None and area < MIN_PICTURE_CM2):
            return
        if "://" in path or path.startswith("/") or path not in self.zf.NameToInfo:
            note = f"external:image:{href[:200]}"
            self.flags.extend([note] if "://" in path and note not in self.flags else [])
            return
        if path not in self.read:
            if len(self.read) >= MAX_PICTURES:
                note = f"cut:pictures: more than {MAX_PICTURES} pictures; the rest not read"
                self.flags.extend([note] if note not in self.flags else [])
                return
            try:
                self.read[path] = read_part(self.zf, path, self.what)
            except IngestError:
                self.read[path] = None
                self.flags.append(f"picture-unreadable:{path}")
        data = self.read[path]
        if data is not None:
            self.images.append(EmbeddedImage(after, locator, data, path))


def _text_parts(reader: _Reader, office_text, pics: _Pictures
                ) -> tuple[list[tuple[str, str]], int]:
    """The text cut at its headings, as the Word reader cuts a body; its pictures into `pics`,
    after the part holding their paragraph ("§2 Budget figure 1")."""
    sections: list[tuple[str, str, list[Block]]] = [("", "", [])]
    found = []
    for kind, text in reader.blocks(office_text):
        if kind == "img":
            found.append((len(sections) - 1, len(sections[-1][2]) - 1, text))
        elif kind.startswith("h"):
            level = min(int(kind[1:] or 1), 6)
            sections.append((heading_prefix(len(sections), text),
                             "#" * level + " " + " ".join(text.split()), []))
        else:
            sections[-1][2].append((str(text), kind == "li"))
    parts: list[tuple[str, str]] = []
    starts = []
    for prefix, heading, blocks in sections:
        starts.append(len(parts))
        parts += section_parts(prefix, heading, blocks)
    for n, (number, index, image) in enumerate(found, 1):
        prefix, heading, blocks = sections[number]
        pics.add(image, starts[number] + block_part(heading, blocks, index),
                 f"{prefix} figure {n}".strip())
    return parts, len(sections) - 1


def _odt(data: bytes, name: str) -> StructuredRead:
    zf, root, flags, meta = _open(data, name)
    office_text = root.find(f"{_T['office:body']}/{_T['office:text']}")
    if office_text is None:
        raise IngestError(f"{name}: not an OpenDocument text (no office:text)")
    reader = _Reader(root)
    pics = _Pictures(zf, name, flags)
    parts, headings = _text_parts(reader, office_text, pics)
    parts += reader.notes + reader.comments
    meta["headings"] = str(headings)
    flags += sorted(reader.flags) + ([] if parts or pics.images else ["empty"])
    return StructuredRead(kind="word", segments=part_segments(parts), metadata=meta, flags=flags,
                          images=pics.images)


def _position(el) -> tuple[float, float]:
    def num(attr: str) -> float:
        match = _UNIT.match(el.get(_q("svg:" + attr), "") or "")
        try:
            return float(match.group(1)) if match else 0.0
        except ValueError:
            return 0.0
    return num("y"), num("x")


def _hidden_styles(root) -> set[str]:
    hidden = set()
    for style in root.iter(_q("style:style")):
        props = style.find(_q("style:drawing-page-properties"))
        if props is not None and props.get(
                _q("presentation:visibility")) == "hidden":
            hidden.add(style.get(_q("style:name"), ""))
    return hidden


def _shape_texts(reader: _Reader, el, depth: int = 0) -> list[str]:
    """A page's frames, shapes and groups in reading order (top, then left)."""
    texts: list[str] = []
    if depth > _MAX_DEPTH:
        return texts
    for child in sorted((c for c in el if c.tag != _T["presentation:notes"]), key=_position):
        if child.tag == _T["draw:g"]:
            texts += _shape_texts(reader, child, depth + 1)
            continue
        blocks = reader.blocks(child)
        text = "\n".join(str(t) for kind, t in blocks if kind != "img")
        if not text:
            desc = child.find(".//" + _T["svg:desc"])
            if desc is None:
                desc = child.find(".//" + _T["svg:title"])
            alt = " ".join("".join(desc.itertext()).split()) if desc is not None else ""
            text = f"[image: {alt}]" if alt else ""
        if text:
            texts.append(text)
    return texts


def _title_of(page) -> tuple[str, object]:
    for frame in page.iter(_T["draw:frame"]):
        if frame.get(_q("presentation:class")) == "title":
            return " ".join("".join(frame.itertext()).split()), frame
    return "", None


def _page_images(page, depth: int = 0) -> list:
    """A slide's draw:image elements in reading order (top, then left), groups opened; not
    its notes' pictures (the slide's thumbnail)."""
    out = []
    for child in sorted((c for c in page if c.tag != _T["presentation:notes"]), key=_position):
        if child.tag == _T["draw:g"] and depth < _MAX_DEPTH:
            out += _page_images(child, depth + 1)
        elif child.tag == _T["draw:frame"]:
            out += list(child.iter(_T["draw:image"]))[:1]  # the first: the rest are fallbacks
    return out


def _page_parts(reader: _Reader, number: int, page, hidden: bool) -> list[tuple[str, str]]:
    title, title_frame = _title_of(page)
    head = f"# Slide {number}" + (f": {title}" if title else "") + (" (hidden)" if hidden else "")
    if title_frame is not None:
        title_frame.getparent().remove(title_frame)
    parts = [(f"slide {number}", "\n\n".join([head, *_shape_texts(reader, page)]) + "\n")]
    notes = page.find(_T["presentation:notes"])
    if notes is not None:
        texts = [str(t) for frame in notes.iter(_T["draw:text-box"])
                 for kind, t in reader.blocks(frame) if kind != "img"]
        if texts:
            parts.append((f"slide {number} (notes)",
                          f"## Slide {number} (notes)\n\n" + "\n".join(texts) + "\n"))
    return parts


def _odp(data: bytes, name: str) -> StructuredRead:
    zf, root, flags, meta = _open(data, name)
    pres = root.find(f"{_T['office:body']}/{_T['office:presentation']}")
    if pres is None:
        raise IngestError(f"{name}: not an OpenDocument presentation (no office:presentation)")
    reader = _Reader(root)
    hidden_styles = _hidden_styles(root)
    parts: list[tuple[str, str]] = []
    pics = _Pictures(zf, name, flags)
    pages = pres.findall(_T["draw:page"])
    for number, page in enumerate(pages, 1):
        hidden = page.get(_q("draw:style-name")) in hidden_styles
        if hidden:
            flags.append(f"hidden-slide:{number}")
        for k, image in enumerate(_page_images(page), 1):
            pics.add(image, len(parts), f"slide {number} picture {k}")
        parts += _page_parts(reader, number, page, hidden)
    parts += reader.comments
    meta["slides"] = str(len(pages))
    flags += sorted(reader.flags) + ([] if parts else ["empty"])
    return StructuredRead(kind="slides", segments=part_segments(parts), metadata=meta,
                          flags=flags, images=pics.images)


def _rtf(data: bytes, name: str) -> StructuredRead:
    from striprtf.striprtf import rtf_to_text

    if len(data) > MAX_RTF_BYTES:
        raise IngestError(f"{name}: {len(data) / 1024**2:.0f} MB of RTF, over the limit of "
                          f"{MAX_RTF_BYTES // 1024**2} MB")
    if not data.lstrip()[:5] == b"{\\rtf":
        raise IngestError(f"{name}: not an RTF file (no {{\\rtf header)")
    try:
        text = rtf_to_text(data.decode("latin-1"), errors="ignore")
    except (ValueError, LookupError, IndexError, RecursionError) as exc:
        raise IngestError(f"{name}: not a readable RTF file ({type(exc).__name__})") from None
    blocks: list[Block] = [(" ".join(line.split()), False) for line in text.splitlines()
                           if line.strip()]
    parts = section_parts("", "", blocks)
    return StructuredRead(kind="word", segments=part_segments(parts),
                          metadata={"paragraphs": str(len(blocks))},
                          flags=[] if parts else ["empty"])


def read_opendoc(data: bytes, name: str) -> StructuredRead:
    """An .odt (kind "word"), .odp (kind "slides") or .rtf (kind "word") as cited parts;
    IngestError (one line) for a corrupt, encrypted or over-limit file."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "rtf":
        return _rtf(data, name)
    if suffix == "odp":
        return _odp(data, name)
    if suffix == "odt":
        return _odt(data, name)
    raise IngestError(f"{name}: not an OpenDocument or RTF file name (.odt, .odp, .rtf)")
