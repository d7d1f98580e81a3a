"""PowerPoint decks (.pptx, .pptm) slide by slide, cited as "review.pptx slide 5" and
"review.pptx slide 5 (notes)".

python-pptx reads the deck (its parser resolves no entities, and it places a placeholder by its
layout when the slide does not say where it is); the archive limits and the macro/external-link
flags come first from `ingest.containers`. Each slide's text is read as a viewer scans it: title
first, then shapes top to bottom, left to right, groups opened in place. A slide's pictures come
back as `StructuredRead.images` ("slide 3 picture 1"), after the slide's text; one drawn over
less than MIN_SLIDE_SHARE of the slide is an icon, not a figure, and is not read.
"""

from __future__ import annotations

import io

from lxml import etree

from ingest.containers import container_flags, markdown_table, open_zip
from ingest.types import EmbeddedImage, IngestError, StructuredRead
from ingest.word import MAX_PART_WORDS, part_segments, split_long

_MAX_SLIDES = 5000
_MAX_DEPTH = 20
MAX_PICTURES = 200  # distinct pictures read out of one deck
MIN_SLIDE_SHARE = 0.01  # a picture drawn over less of the slide than this is an icon


_PML = {"p": "http://schemas.openxmlformats.org/presentationml/2006/main",
        "a": "http://schemas.openxmlformats.org/drawingml/2006/main"}
_HIDDEN = etree.XPath("string(./*[1]/p:cNvPr/@hidden)", namespaces=_PML)
_DESCR = etree.XPath("string(./*[1]/p:cNvPr/@descr)", namespaces=_PML)
_OFFSET = etree.XPath("./p:spPr/a:xfrm/a:off|./p:grpSpPr/a:xfrm/a:off|./p:xfrm/a:off",
                      namespaces=_PML)


def _position(shape, cache: dict) -> tuple[int, int]:
    """(top, left): the shape's own offset, else its placeholder's inherited one (looked up
    once per layout placeholder: python-pptx's lookup walks the layout with XPath each time)."""
    off = _OFFSET(shape._element)
    try:
        if off:
            return int(off[0].get("y", 0)), int(off[0].get("x", 0))
        key = ((str(shape.part.slide_layout.part.partname), shape.placeholder_format.idx)
               if shape.is_placeholder else None)
        if key is None or key not in cache:
            value = int(shape.top or 0), int(shape.left or 0)
            if key is None:
                return value
            cache[key] = value
        return cache[key]
    except (ValueError, TypeError, AttributeError, KeyError, etree.LxmlError):
        return 0, 0


def _frame_text(frame) -> str:
    """A text frame's paragraphs, indented list items below the first level."""
    lines = []
    for para in frame.paragraphs:
        text = " ".join("".join(run.text for run in para.runs).split()) or " ".join(
            para.text.split())
        if not text:
            continue
        level = para.level or 0
        lines.append(("  " * (level - 1) + "- " + text) if level else text)
    return "\n".join(lines)


def _table_text(table) -> str:
    rows = [[" ".join(cell.text.split()) for cell in row.cells] for row in table.rows]
    rows = [r for r in rows if any(r)]
    return markdown_table(rows).rstrip("\n") if rows else ""


def _shape_blocks(shapes, skip, cache: dict, flags: set[str], depth: int = 0) -> list[str]:
    """Texts of shapes in reading order (top, then left), group shapes recursed in place;
    a hidden shape's text kept but marked "[hidden] ... [/hidden]"."""
    blocks: list[str] = []
    if depth > _MAX_DEPTH:
        return blocks
    for shape in sorted(shapes, key=lambda shape: _position(shape, cache)):
        if skip is not None and shape.shape_id == skip:
            continue
        texts = _shape_text(shape, cache, flags, depth)
        if texts and _HIDDEN(shape._element) in ("1", "true"):
            flags.add("hidden-shapes")
            texts = ["[hidden] " + "\n\n".join(texts) + " [/hidden]"]
        blocks += texts
    return [b for b in blocks if b]


def _shape_text(shape, cache: dict, flags: set[str], depth: int) -> list[str]:
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        return _shape_blocks(shape.shapes, None, cache, flags, depth + 1)
    if getattr(shape, "has_table", False) and shape.has_table:
        return [_table_text(shape.table)]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        return [_frame_text(shape.text_frame)]
    if getattr(shape, "has_chart", False) and shape.has_chart:
        chart = shape.chart
        if chart.has_title and chart.chart_title.has_text_frame:
            return ["[chart] " + _frame_text(chart.chart_title.text_frame)]
        return []
    alt = " ".join(_DESCR(shape._element).split())
    return [f"[image: {alt}]"] if alt else []


def _title(slide) -> tuple[str, int | None]:
    shape = slide.shapes.title
    if shape is None or not shape.has_text_frame:
        return "", None
    return " ".join(shape.text_frame.text.split()), shape.shape_id


def _split(locator: str, head: str, blocks: list[str]) -> list[tuple[str, str]]:
    """One part for a slide, or several ("slide 5 [2/3]") when it runs past MAX_PART_WORDS."""
    chunks: list[list[str]] = [[]]
    words = 0
    for block in (piece for whole in blocks for piece in split_long(whole)):
        n = len(block.split())
        if chunks[-1] and words + n > MAX_PART_WORDS:
            chunks.append([])
            words = 0
        chunks[-1].append(block)
        words += n
    if len(chunks) == 1:
        return [(locator, "\n\n".join([head, *blocks]) + "\n")]
    return [(f"{locator} [{i}/{len(chunks)}]", "\n\n".join(([head] if i == 1 else []) + chunk)
             + "\n") for i, chunk in enumerate(chunks, 1)]


def _pictures(shapes, depth: int = 0) -> list:
    """The picture shapes on a slide, groups opened, in no particular order."""
    from pptx.shapes.group import GroupShape
    from pptx.shapes.picture import Picture

    out = []
    for shape in shapes if depth <= _MAX_DEPTH else ():
        if isinstance(shape, GroupShape):
            out += _pictures(shape.shapes, depth + 1)
        elif isinstance(shape, Picture):
            out.append(shape)
    return out


def _drawn_large(shape, area: int) -> bool:
    """Whether a picture covers at least MIN_SLIDE_SHARE of the slide (unknown size: yes)."""
    try:
        width, height = shape.width, shape.height
    except (ValueError, AttributeError, TypeError):
        return True
    return not (area and width and height and width * height < MIN_SLIDE_SHARE * area)


def _slide_images(number: int, slide, after: int, area: int, cache: dict,
                  parts_read: dict[str, bytes]) -> list[EmbeddedImage]:
    """A slide's pictures in reading order (top, then left), icons left out; `parts_read`
    holds each image part once across the deck (a logo on every slide is read once)."""
    out = []
    shapes = [shape for shape in sorted(_pictures(slide.shapes),
                                        key=lambda shape: _position(shape, cache))
              if _drawn_large(shape, area)]
    for k, shape in enumerate(shapes, 1):
        try:
            rid = shape._element.blip_rId
            part = shape.part.related_part(rid) if rid else None
        except (KeyError, ValueError, AttributeError, TypeError):
            continue  # a linked picture (flagged external) or a broken relationship
        if part is None:
            continue
        name = str(part.partname).lstrip("/")
        if name not in parts_read:
            if len(parts_read) >= MAX_PICTURES or "" in parts_read:
                parts_read.setdefault("", b"")  # marks the cut
                continue
            parts_read[name] = part.blob
        out.append(EmbeddedImage(after, f"slide {number} picture {k}", parts_read[name], name))
    return out


def _slide_parts(number: int, slide, flags: list[str], cache: dict,
                 seen: set[str]) -> list[tuple[str, str]]:
    title, title_id = _title(slide)
    hidden = slide._element.get("show") in ("0", "false")
    head = f"# Slide {number}" + (f": {title}" if title else "") + (" (hidden)" if hidden else "")
    if hidden:
        flags.append(f"hidden-slide:{number}")
    parts = _split(f"slide {number}", head, _shape_blocks(slide.shapes, title_id, cache, seen))
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = _frame_text(notes) if notes is not None else ""
        if text:
            parts += _split(f"slide {number} (notes)", f"## Slide {number} (notes)", [text])
    return parts


def read_slides(data: bytes, name: str) -> StructuredRead:
    """A .pptx/.pptm as one part per slide ("slide 5") and one per slide's speaker notes
    ("slide 5 (notes)"); hidden slides are kept, marked "(hidden)" and flagged
    "hidden-slide:<n>". IngestError (one line) for a corrupt, encrypted or over-limit deck."""
    from pptx import Presentation

    zf = open_zip(data, name)
    flags = container_flags(zf)
    try:
        prs = Presentation(io.BytesIO(data))
        slides = list(prs.slides)
    except IngestError:
        raise
    except Exception as exc:  # python-pptx raises KeyError, ValueError, lxml errors, ...
        raise IngestError(f"{name}: not a readable PowerPoint file "
                          f"({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(slides) > _MAX_SLIDES:
        raise IngestError(f"{name}: more than {_MAX_SLIDES:,} slides; refusing it")
    parts: list[tuple[str, str]] = []
    images: list[EmbeddedImage] = []
    cache: dict = {}
    seen: set[str] = set()
    parts_read: dict[str, bytes] = {}
    area = (prs.slide_width or 0) * (prs.slide_height or 0)
    for number, slide in enumerate(slides, 1):
        try:
            got = _slide_parts(number, slide, flags, cache, seen)
        except (KeyError, ValueError, AttributeError, TypeError) as exc:
            raise IngestError(f"{name}: slide {number} is damaged ({type(exc).__name__})") \
                from None
        body = sum(not locator.startswith(f"slide {number} (notes)") for locator, _ in got)
        images += _slide_images(number, slide, len(parts) + body - 1, area, cache, parts_read)
        parts += got
    if "" in parts_read:
        flags.append(f"cut:pictures: {MAX_PICTURES} pictures read; any more were not")
    flags += sorted(seen)
    props = prs.core_properties
    meta = {"slides": str(len(slides))}
    for key, value in (("title", props.title), ("author", props.author)):
        if value and value.strip():
            meta[key] = " ".join(value.split())[:300]
    if not parts:
        flags.append("empty")
    return StructuredRead(kind="slides", segments=part_segments(parts), metadata=meta,
                          flags=flags, images=images)
