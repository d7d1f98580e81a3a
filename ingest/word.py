"""Word documents (.docx, .docm) as parts an analyst can cite: "lease.docx §4 Renewal ¶2".

The package's XML is read directly through `ingest.containers.safe_xml` rather than through
python-docx's `Document()`: python-docx refuses .docm files (it checks the content type) and
parses with its own parser, while one XML policy (no entities, no DTD, no network) must hold for
every part. Reading the body's children in order keeps paragraphs and tables interleaved as the
reader sees them; tracked changes and comments are kept but marked, so a deleted clause is never
silently current text. The body's pictures come back as `StructuredRead.images` ("§2 Results
figure 1"), each after the part holding its paragraph; pictures in headers and footers are a
page's decoration (a logo) and are not read.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ingest.containers import container_flags, markdown_table, open_zip, read_part, safe_xml
from ingest.types import EmbeddedImage, IngestError, Segment, StructuredRead

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_R_EMBED = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed"
_BLIP = "{http://schemas.openxmlformats.org/drawingml/2006/main}blip"
_VML_IMAGE = "{urn:schemas-microsoft-com:vml}imagedata"
_EXTENT = "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}extent"
_EMU_PER_TWIP = 635
_LETTER = (12240 * _EMU_PER_TWIP, 15840 * _EMU_PER_TWIP)  # a page's size when none is given
MAX_PICTURES = 200  # pictures read out of one document
#: a picture drawn over less than this share of the page is an icon or a rule, not a figure
MIN_PAGE_SHARE = 0.01
_DC = {"title": "{http://purl.org/dc/elements/1.1/}title",
       "author": "{http://purl.org/dc/elements/1.1/}creator",
       "subject": "{http://purl.org/dc/elements/1.1/}subject",
       "created": "{http://purl.org/dc/terms/}created",
       "modified": "{http://purl.org/dc/terms/}modified"}
#: a part longer than this many words is split into several segments sharing its locator
MAX_PART_WORDS = 1500
_HEADING_NAME = re.compile(r"^heading\s*([1-9])$")
_MAX_HEADING = 80


# ---------------------------------------------------------------- parts into segments (shared)

Block = tuple[str, bool]  # (markdown text, is a list item)


def _join_blocks(blocks: list[Block]) -> str:
    """Blocks separated by a blank line; consecutive list items by a single line break."""
    out: list[str] = []
    prev_list = False
    for i, (text, is_list) in enumerate(blocks):
        if i:
            out.append("\n" if is_list and prev_list else "\n\n")
        out.append(text)
        prev_list = is_list
    return "".join(out)


def _chunks(blocks: list[Block], max_words: int) -> Iterator[tuple[int, int]]:
    """(first, last) block indexes of runs of blocks of at most `max_words` words each."""
    start, words = 0, 0
    for i, (text, _) in enumerate(blocks):
        n = len(text.split())
        if i > start and words + n > max_words:
            yield start, i - 1
            start, words = i, 0
        words += n
    if blocks:
        yield start, len(blocks) - 1


def split_long(text: str, max_words: int = MAX_PART_WORDS) -> list[str]:
    """One block too long for a part, in pieces of at most `max_words` words: a markdown
    table by rows (each piece repeats the header), other text at whitespace."""
    lines = text.split("\n")
    if len(lines) > 3 and lines[0].startswith("| ") and lines[1].startswith("|---"):
        pieces, words = [lines[:2]], 0
        for row in lines[2:]:
            n = len(row.split())
            if len(pieces[-1]) > 2 and words + n > max_words:
                pieces.append(lines[:2])
                words = 0
            pieces[-1] = pieces[-1] + [row]
            words += n
        return ["\n".join(p) for p in pieces]
    cuts = [m.start() for i, m in enumerate(re.finditer(r"\S+", text)) if i and not i % max_words]
    return [text[a:b].strip() for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def section_parts(prefix: str, heading: str, blocks: list[Block],
                  max_words: int = MAX_PART_WORDS) -> list[tuple[str, str]]:
    """A section's (locator, text) parts: "<prefix> ¶a-¶b" per retrieval-sized run of its
    numbered blocks, the heading line opening the first, a single block too long for one part
    cut into "¶k (1/3)", ...; used by the Word, OpenDocument and RTF readers alike."""
    if not blocks:
        return [(prefix, heading + "\n")] if heading else []
    parts = []
    for first, last in _chunks(blocks, max_words):
        para = f"¶{first + 1}" if first == last else f"¶{first + 1}-¶{last + 1}"
        locator = f"{prefix} {para}" if prefix else para
        head = heading + "\n\n" if heading and first == 0 else ""
        pieces = split_long(blocks[first][0], max_words) if first == last else []
        if len(pieces) > 1:
            parts += [(f"{locator} ({i}/{len(pieces)})", (head if i == 1 else "") + piece + "\n")
                      for i, piece in enumerate(pieces, 1)]
        else:
            parts.append((locator, head + _join_blocks(blocks[first:last + 1]) + "\n"))
    return parts


def block_part(heading: str, blocks: list[Block], index: int,
               max_words: int = MAX_PART_WORDS) -> int:
    """Which of `section_parts(prefix, heading, blocks)`'s parts holds block `index`, counted
    from the section's first part; a picture before the first block (`index` -1) sits in the
    heading's part, or before the section (-1) when it has none."""
    if index < 0 and (not heading or not blocks):
        return 0 if heading else -1
    offset = 0
    for first, last in _chunks(blocks, max_words):
        pieces = max(1, len(split_long(blocks[first][0], max_words))) if first == last else 1
        if index <= last:
            return offset + pieces - 1 if index >= first else offset
        offset += pieces
    return offset - 1


def part_segments(parts: Iterable[tuple[str, str]]) -> list[Segment]:
    """"part" segments numbered 1.. in reading order; an empty document is one empty part."""
    segments = [Segment(order=i, text=text, span_kind="part", start=i + 1, end=i + 1,
                        locator=locator)
                for i, (locator, text) in enumerate(parts)]
    return segments or [Segment(order=0, text="", span_kind="part", start=1, end=1,
                                locator="(empty)")]


def heading_prefix(number: int, title: str) -> str:
    """"§4 Renewal": the section's number in reading order and its heading, kept short."""
    title = " ".join(title.split())
    if len(title) > _MAX_HEADING:
        title = title[:_MAX_HEADING - 1].rstrip() + "…"
    return f"§{number} {title}"


# ---------------------------------------------------------------- the package's parts


@dataclass
class _Style:
    name: str
    level: int | None  # heading level, 1..9
    num: tuple[str, int] | None  # list (numId, ilvl) the style carries
    based_on: str | None


@dataclass
class _Context:
    """What reading a paragraph needs from the rest of the package, and what it learns."""

    styles: dict[str, _Style] = field(default_factory=dict)
    formats: dict[tuple[str, int], str] = field(default_factory=dict)  # (numId, ilvl) -> numFmt
    counters: dict[str, list[int]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    images: dict[str, str] = field(default_factory=dict)  # relationship id -> image part
    page: tuple[int, int] = _LETTER  # the page's size in EMU, for what is too small a picture
    #: the body's pictures as found: (section number, block index, image part)
    found: list[tuple[int, int, str]] = field(default_factory=list)


def _rels(zf: zipfile.ZipFile, part: str, what: str) -> list[tuple[str, str]]:
    """(type suffix, target part name) of a part's internal relationships."""
    return [(kind, path) for _ident, kind, path in _rel_entries(zf, part, what)]


def _rel_entries(zf: zipfile.ZipFile, part: str, what: str) -> list[tuple[str, str, str]]:
    """(id, type suffix, target part name) of a part's internal relationships."""
    folder, base = posixpath.split(part)
    name = posixpath.join(folder, "_rels", base + ".rels")
    if name not in zf.NameToInfo:
        return []
    try:
        root = safe_xml(read_part(zf, name, what), what)
    except IngestError:  # the parts it names are then not found: the body is still read
        return []
    out = []
    for rel in root.iter(_PKG_REL + "Relationship"):
        if rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
            posixpath.join(folder, target))
        out.append((rel.get("Id", ""), rel.get("Type", "").rsplit("/", 1)[-1], path))
    return out


def _xml(zf: zipfile.ZipFile, name: str, what: str, flags: set[str]):
    """An optional part (styles, a header, the comments): one that cannot be read is flagged
    "damaged-part:<name>" and left out, so the body is not lost with it."""
    if name not in zf.NameToInfo:
        return None
    try:
        return safe_xml(read_part(zf, name, what), what)
    except IngestError:
        flags.add(f"damaged-part:{name}")
        return None


def _main_part(zf: zipfile.ZipFile, what: str) -> str:
    for kind, path in _rels(zf, "", what):
        if kind == "officeDocument" and path in zf.NameToInfo:
            return path
    if "word/document.xml" in zf.NameToInfo:
        return "word/document.xml"
    raise IngestError(f"{what}: not a Word document (no main document part)")


def _val(el, path: str) -> str | None:
    found = el.find(path) if el is not None else None
    return found.get(W + "val") if found is not None else None


def _num_of(ppr) -> tuple[str, int] | None:
    num = ppr.find(W + "numPr") if ppr is not None else None
    if num is None:
        return None
    num_id = _val(num, W + "numId")
    if num_id is None or num_id == "0":
        return None
    try:
        return num_id, int(_val(num, W + "ilvl") or 0)
    except ValueError:
        return num_id, 0


def _read_styles(root) -> dict[str, _Style]:
    styles: dict[str, _Style] = {}
    if root is None:
        return styles
    for st in root.iter(W + "style"):
        if st.get(W + "type") not in (None, "paragraph"):
            continue
        name = (_val(st, W + "name") or "").strip().lower()
        ppr = st.find(W + "pPr")
        level = None
        match = _HEADING_NAME.match(name)
        if match:
            level = int(match.group(1))
        elif name == "title":
            level = 1
        else:
            outline = _val(ppr, W + "outlineLvl")
            if outline is not None and outline.isdigit() and int(outline) < 9:
                level = int(outline) + 1
        styles[st.get(W + "styleId", "")] = _Style(name, level, _num_of(ppr),
                                                    _val(st, W + "basedOn"))
    return styles


def _read_numbering(root) -> dict[tuple[str, int], str]:
    """(numId, level) -> numFmt ("bullet", "decimal", ...), through the abstract numbering."""
    if root is None:
        return {}
    abstract: dict[str, dict[int, str]] = {}
    for ab in root.iter(W + "abstractNum"):
        levels = abstract.setdefault(ab.get(W + "abstractNumId", ""), {})
        for lvl in ab.iter(W + "lvl"):
            ilvl = lvl.get(W + "ilvl", "0")
            levels[int(ilvl) if ilvl.isdigit() else 0] = _val(lvl, W + "numFmt") or "bullet"
    formats: dict[tuple[str, int], str] = {}
    for num in root.iter(W + "num"):
        for ilvl, fmt in abstract.get(_val(num, W + "abstractNumId") or "", {}).items():
            formats[(num.get(W + "numId", ""), ilvl)] = fmt
    return formats


def _style_chain(ctx: _Context, style_id: str | None) -> Iterator[_Style]:
    seen: set[str] = set()
    while style_id and style_id not in seen and len(seen) < 10:
        seen.add(style_id)
        style = ctx.styles.get(style_id)
        if style is None:
            return
        yield style
        style_id = style.based_on


# ---------------------------------------------------------------- paragraphs and tables


def _run_text(run, ctx: _Context, out: list[str]) -> None:
    """A run's text; hidden (w:vanish) text kept but marked "[hidden] ... [/hidden]", white
    text flagged (both are where a document hides words meant for a model, not a reader)."""
    rpr = run.find(W + "rPr")
    if rpr is not None:
        color = _val(rpr, W + "color")
        if color is not None and color.upper() in ("FFFFFF", "WHITE"):
            ctx.flags.add("white-text")
        vanish = rpr.find(W + "vanish")
        if vanish is not None and vanish.get(W + "val", "true") not in ("0", "false", "off"):
            ctx.flags.add("hidden-text")
            inner: list[str] = []
            _run_content(run, ctx, inner)
            if "".join(inner).strip():
                out.append("[hidden] " + "".join(inner) + " [/hidden]")
            return
    _run_content(run, ctx, out)


def _run_content(run, ctx: _Context, out: list[str]) -> None:
    for child in run:
        tag = child.tag
        if tag == W + "t" or tag == W + "delText":
            out.append(child.text or "")
        elif tag == W + "tab":
            out.append("\t")
        elif tag in (W + "br", W + "cr"):
            out.append("\n")
        elif tag == W + "noBreakHyphen":
            out.append("-")
        elif tag == W + "footnoteReference":
            out.append(f"[^{child.get(W + 'id', '?')}]")
        elif tag == W + "endnoteReference":
            out.append(f"[^endnote {child.get(W + 'id', '?')}]")
        elif tag in (W + "drawing", W + "pict") or tag == _MC + "AlternateContent":
            _box_text(child, ctx, out)


def _box_text(el, ctx: _Context, out: list[str]) -> None:
    """Text boxes' paragraphs, once (an AlternateContent's Fallback repeats its Choice)."""
    if el.tag == _MC + "AlternateContent":
        el = next(iter(el), None)
        if el is None:
            return
    for box in el.iter(W + "txbxContent"):
        texts = [t for t in (paragraph_text(p, ctx) for p in box.iter(W + "p")) if t]
        if texts:
            out.append(" " + " ".join(texts) + " ")


def _inline(el, ctx: _Context, out: list[str]) -> None:
    """A paragraph's (or a container's) inline content, tracked changes marked."""
    for child in el:
        tag = child.tag
        if tag == W + "r":
            _run_text(child, ctx, out)
        elif tag in (W + "ins", W + "moveTo"):
            ctx.flags.add("tracked-changes")
            _marked(child, "inserted", ctx, out)
        elif tag in (W + "del", W + "moveFrom"):
            ctx.flags.add("tracked-changes")
            _marked(child, "deleted", ctx, out)
        elif tag in (W + "hyperlink", W + "smartTag", W + "fldSimple", W + "customXml",
                     W + "sdtContent", W + "sdt", W + "dir", W + "bdo"):
            _inline(child, ctx, out)


def _marked(el, mark: str, ctx: _Context, out: list[str]) -> None:
    inner: list[str] = []
    _inline(el, ctx, inner)
    text = "".join(inner)
    if text.strip():
        out.append(f"[{mark}] {text} [/{mark}]")


def paragraph_text(p, ctx: _Context) -> str:
    """A paragraph's text as read, insertions and deletions marked ("[deleted] ... [/deleted]")
    since python-docx's `Paragraph.text` silently drops deleted runs."""
    out: list[str] = []
    _inline(p, ctx, out)
    return "".join(out).replace(" [/hidden][hidden] ", "").strip()


def _cell_text(tc, ctx: _Context) -> str:
    return " ".join(t for t in (paragraph_text(p, ctx) for p in tc.iter(W + "p")) if t)


def table_markdown(tbl, ctx: _Context) -> str:
    """A table as a markdown table, rows padded to the widest row (merged cells stay apart)."""
    rows = [[_cell_text(tc, ctx) for tc in tr.xpath("./w:tc|./w:sdt/w:sdtContent/w:tc",
                                                     namespaces={"w": W[1:-1]})]
            for tr in tbl.xpath("./w:tr|./w:sdt/w:sdtContent/w:tr", namespaces={"w": W[1:-1]})]
    rows = [r for r in rows if any(r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    return markdown_table(r + [""] * (width - len(r)) for r in rows).rstrip("\n")


def _list_marker(ctx: _Context, num: tuple[str, int]) -> str:
    """"- " for a bullet, "3. " for the third item of a numbered level; indented by level."""
    num_id, ilvl = num
    ilvl = max(0, min(ilvl, 8))
    fmt = ctx.formats.get((num_id, ilvl), "bullet")
    indent = "  " * ilvl
    if fmt in ("bullet", "none"):
        return indent + "- "
    counts = ctx.counters.setdefault(num_id, [0] * 9)
    counts[ilvl] += 1
    for deeper in range(ilvl + 1, 9):
        counts[deeper] = 0
    return f"{indent}{counts[ilvl]}. "


def _paragraph_info(p, ctx: _Context) -> tuple[int | None, tuple[str, int] | None]:
    """(heading level, list numbering) from the paragraph's own properties, then its style."""
    ppr = p.find(W + "pPr")
    level: int | None = None
    num = _num_of(ppr)
    outline = _val(ppr, W + "outlineLvl")
    if outline is not None and outline.isdigit() and int(outline) < 9:
        level = int(outline) + 1
    for style in _style_chain(ctx, _val(ppr, W + "pStyle")):
        level = level if level is not None else style.level
        num = num if num is not None else style.num
        if level is not None and num is not None:
            break
    return level, num


# ---------------------------------------------------------------- the body


@dataclass
class _Section:
    number: int
    title: str
    level: int
    blocks: list[Block] = field(default_factory=list)


def _body_blocks(body) -> Iterator[tuple[str, object]]:
    """("p", element) and ("tbl", element) in reading order, content controls unwrapped."""
    for child in body:
        tag = child.tag
        if tag == W + "p":
            yield "p", child
        elif tag == W + "tbl":
            yield "tbl", child
        elif tag in (W + "sdt", W + "customXml"):
            content = child.find(W + "sdtContent") if tag == W + "sdt" else child
            if content is not None:
                yield from _body_blocks(content)


def _sections(body, ctx: _Context) -> list[_Section]:
    """The body cut at its headings: a preamble (number 0) and one section per heading."""
    sections = [_Section(0, "", 0)]
    for kind, el in _body_blocks(body):
        _block(kind, el, sections, ctx)
        for path in _pictures_in(el, ctx):
            ctx.found.append((sections[-1].number, len(sections[-1].blocks) - 1, path))
    return sections


def _pictures_in(el, ctx: _Context) -> list[str]:
    """The image parts a paragraph or table shows, once each, in order; pictures drawn over
    less than MIN_PAGE_SHARE of the page left out (icons, bullets, rules)."""
    out: list[str] = []
    for pic in el.iter(_BLIP, _VML_IMAGE):
        path = ctx.images.get(pic.get(_R_EMBED) or pic.get(_R_ID) or "")
        if path is None or path in out or _too_small(pic, ctx.page):
            continue
        out.append(path)
    return out


def _too_small(pic, page: tuple[int, int]) -> bool:
    """A DrawingML picture whose drawn extent is under MIN_PAGE_SHARE of the page's area."""
    drawing = next((a for a in pic.iterancestors() if a.tag in (
        "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}inline",
        "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}anchor")), None)
    extent = drawing.find(_EXTENT) if drawing is not None else None
    try:
        cx, cy = int(extent.get("cx", "0")), int(extent.get("cy", "0"))
    except (AttributeError, ValueError):
        return False
    return cx * cy < MIN_PAGE_SHARE * page[0] * page[1]


def _block(kind: str, el, sections: list[_Section], ctx: _Context) -> None:
    """A paragraph or table into the sections: a heading opens a section, a list item is
    marked, an empty paragraph is left out."""
    if kind == "tbl":
        table = table_markdown(el, ctx)
        if table:
            sections[-1].blocks.append((table, False))
        return
    text = paragraph_text(el, ctx)
    if not text:
        return
    level, num = _paragraph_info(el, ctx)
    if level is not None:
        sections.append(_Section(len(sections), text, level))
    elif num is not None:
        sections[-1].blocks.append((_list_marker(ctx, num) + text, True))
    else:
        sections[-1].blocks.append((text, False))


def _heading(sec: _Section) -> str:
    return "#" * min(sec.level, 6) + " " + " ".join(sec.title.split()) if sec.number else ""


def _prefix(sec: _Section) -> str:
    return heading_prefix(sec.number, sec.title) if sec.number else ""


def _body_parts(sections: list[_Section]) -> tuple[list[tuple[str, str]], list[int]]:
    """The body's parts, and the index of each section's first part among them."""
    parts: list[tuple[str, str]] = []
    starts: list[int] = []
    for sec in sections:
        starts.append(len(parts))
        parts += section_parts(_prefix(sec), _heading(sec), sec.blocks)
    return parts, starts


def _page_size(body) -> tuple[int, int]:
    """The (last) section's page size in EMU; Letter when the document does not say."""
    size = body.find(f"{W}sectPr/{W}pgSz")
    try:
        w, h = int(size.get(W + "w")), int(size.get(W + "h"))
    except (AttributeError, TypeError, ValueError):
        return _LETTER
    return (w * _EMU_PER_TWIP, h * _EMU_PER_TWIP) if w > 0 and h > 0 else _LETTER


def _images(zf, sections: list[_Section], starts: list[int], base: int, ctx: _Context,
            what: str, flags: list[str]) -> list[EmbeddedImage]:
    """The body's pictures as embedded images, each after the part holding its paragraph
    (`base`: the parts before the body), cited "§2 Results figure 3" in document order; each
    image part read once, at most MAX_PICTURES distinct ones."""
    out: list[EmbeddedImage] = []
    data: dict[str, bytes | None] = {}
    for n, (number, index, path) in enumerate(ctx.found[:MAX_PICTURES * 5], 1):
        if path not in data:
            if len(data) == MAX_PICTURES:
                flags.append(f"cut:pictures: more than {MAX_PICTURES} pictures; the rest "
                             "not read")
                break
            try:
                data[path] = read_part(zf, path, what)
            except IngestError:
                data[path] = None
                flags.append(f"picture-unreadable:{path}")
        if data[path] is None:
            continue
        sec = sections[number]
        after = base + starts[number] + block_part(_heading(sec), sec.blocks, index)
        out.append(EmbeddedImage(after, f"{_prefix(sec)} figure {n}".strip(), data[path], path))
    return out


def _story_blocks(root, ctx: _Context) -> list[Block]:
    """A header's, footer's or note's paragraphs and tables as blocks."""
    blocks: list[Block] = []
    for kind, el in _body_blocks(root):
        text = table_markdown(el, ctx) if kind == "tbl" else paragraph_text(el, ctx)
        if text:
            blocks.append((text, False))
    return blocks


def _header_footer_parts(zf, rels, ctx: _Context, what: str) -> list[tuple[str, str]]:
    """All headers as one part ("header"), all footers as another ("footer"), repeats once."""
    parts = []
    for kind in ("header", "footer"):
        seen: set[str] = set()
        blocks: list[Block] = []
        for rel_kind, path in rels:
            root = _xml(zf, path, what, ctx.flags) if rel_kind == kind else None
            for block in _story_blocks(root, ctx) if root is not None else ():
                if block[0] not in seen:
                    seen.add(block[0])
                    blocks.append(block)
        if blocks:
            parts.append((kind, _join_blocks(blocks) + "\n"))
    return parts


def _note_parts(root, tag: str, label: str, ctx: _Context) -> list[tuple[str, str]]:
    """One part per footnote or endnote ("footnote 3"); the separators are not notes."""
    parts = []
    for note in root.iter(W + tag) if root is not None else ():
        if note.get(W + "type") in ("separator", "continuationSeparator", "continuationNotice"):
            continue
        blocks = _story_blocks(note, ctx)
        if blocks:
            ident = note.get(W + "id", "?")
            parts.append((f"{label} {ident}", f"[^{ident}]: " + _join_blocks(blocks) + "\n"))
    return parts


def _comment_parts(root, ctx: _Context) -> list[tuple[str, str]]:
    """One part per comment, marked "[comment by AUTHOR]" so it never reads as the text."""
    parts = []
    for i, comment in enumerate(root.iter(W + "comment") if root is not None else (), 1):
        blocks = _story_blocks(comment, ctx)
        if blocks:
            author = " ".join((comment.get(W + "author") or "unknown").split())[:80]
            parts.append((f"comment {i}",
                          f"[comment by {author}] " + _join_blocks(blocks) + "\n"))
    if parts:
        ctx.flags.add("comments")
    return parts


def _metadata(zf, sections: list[_Section], what: str, flags: set[str]) -> dict[str, str]:
    meta = {"headings": str(len(sections) - 1),
            "paragraphs": str(sum(len(s.blocks) for s in sections))}
    core = None
    for kind, path in _rels(zf, "", what):
        if kind == "core-properties":
            core = _xml(zf, path, what, flags)
    for key, tag in _DC.items():
        found = core.find(tag) if core is not None else None
        if found is not None and (found.text or "").strip():
            meta[key] = " ".join(found.text.split())[:300]
    return meta


def read_word(data: bytes, name: str) -> StructuredRead:
    """A .docx/.docm as parts: headers, the body cut at its headings ("§4 Renewal ¶1-¶6"),
    footers, footnotes, endnotes and comments; IngestError (one line) for a corrupt, encrypted
    or over-limit file. An empty document is one empty part, flagged "empty"."""
    zf = open_zip(data, name)
    flags = container_flags(zf)
    main = _main_part(zf, name)
    entries = _rel_entries(zf, main, name)
    rels = [(kind, path) for _ident, kind, path in entries]
    ctx = _Context(images={ident: path for ident, kind, path in entries
                           if kind == "image" and path in zf.NameToInfo})
    for kind, path in rels:
        if kind == "styles":
            ctx.styles = _read_styles(_xml(zf, path, name, ctx.flags))
        elif kind == "numbering":
            ctx.formats = _read_numbering(_xml(zf, path, name, ctx.flags))
    root = safe_xml(read_part(zf, main, name), name)
    body = root.find(W + "body")
    if body is None:
        raise IngestError(f"{name}: not a Word document (no body)")
    ctx.page = _page_size(body)
    sections = _sections(body, ctx)
    body_parts, starts = _body_parts(sections)
    extra = {kind: _xml(zf, path, name, ctx.flags) for kind, path in rels
             if kind in ("footnotes", "endnotes", "comments")}
    hf = _header_footer_parts(zf, rels, ctx, name)
    headers = [p for p in hf if p[0] == "header"]
    images = _images(zf, sections, starts, len(headers), ctx, name, flags)
    parts = (headers + body_parts + [p for p in hf if p[0] == "footer"]
             + _note_parts(extra.get("footnotes"), "footnote", "footnote", ctx)
             + _note_parts(extra.get("endnotes"), "endnote", "endnote", ctx)
             + _comment_parts(extra.get("comments"), ctx))
    meta = _metadata(zf, sections, name, ctx.flags)
    flags += sorted(ctx.flags) + ([] if parts or images else ["empty"])
    return StructuredRead(kind="word", segments=part_segments(parts),
                          metadata=meta, flags=flags, images=images)
