"""PDF reading with PyMuPDF: one segment per page, document metadata and OCR for scanned pages;
where a page's secrets are on its picture, so a drawn page can hide them; and which pages carry
a figure (a chart, a diagram, a photo), whose pictures are OCRed for every target and whose page
is drawn as a `<picture>` for a vision target."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import pymupdf

from ingest import pictures as pics
from ingest import secrets
from ingest.ocr import ocr_rgb, tesseract_available
from ingest.pictures import PictureOptions
from ingest.types import IngestError, Picture, Segment
from ingest.video import TILE, tile_grid

_METADATA_KEYS = ("title", "author", "subject", "keywords", "creator", "producer", "creationDate",
                  "format")
_OCR_DPI = 200

# --- figures (measured on 182 real PDFs: benchmarks/measure_pdf_figures.py) ---------------------
#: a page carries a figure when its pictures and drawings cover at least this share of it (6% of
#: a Letter page is a 2.4-inch square: a small chart; 8% missed charts and diagrams in papers)
FIGURE_SHARE = 0.06
#: at most this many figure pages of one PDF are OCRed and drawn (the largest figures first), so
#: a 500-page catalogue of product photos costs 20 pages' OCR and pictures, not 500
MAX_FIGURE_PAGES = 20
#: and at most this many pictures of one figure page are OCRed (its largest): a catalogue page of
#: 40 thumbnails costs 6 OCR runs
MAX_PICTURES_READ = 6
_PART_SHARE = 0.01  # a picture or drawing smaller than this share of the page is an icon, a bullet
_MIN_PIXELS = 32  # a picture narrower or lower than this (its own pixels) is a mark
_SCAN_SHARE = 0.85  # a picture covering the page is a scan: its text is the page's text
_REPEATED = 0.5  # on this share of the pages (2 or more): decoration, not a figure
_MIN_SHAPES = 3  # curves, slanted lines, bar sizes that make drawings a chart, a diagram
_CELL = 6.0  # points: the grid drawings are joined on (neighbours within a cell are one drawing)
_MAX_CELLS = 100_000  # cells marked per page at most: a coarser grid beyond (thousands of fills)


class PdfError(IngestError):
    """A PDF that cannot be read: encrypted with a password, corrupt, empty or over a limit."""


@dataclass(frozen=True)
class PdfResult:
    """The pages of a PDF as segments, plus its metadata and reading flags."""

    segments: list[Segment]
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    #: figure pages drawn for a vision target (their `<picture image=...>` tags in the pages)
    pictures: list[Picture] = field(default_factory=list)


def _clean(text: str) -> str:
    """Normalize line endings, strip trailing whitespace and end non-empty text with a newline."""
    text = text.replace("\r\n", "\n").rstrip()
    return text + "\n" if text else ""


def page_text(page: pymupdf.Page) -> str:
    """A page's text layer as ingest stores it (before the secret scan)."""
    return _clean(page.get_text("text", sort=True))


def secret_rects(doc: pymupdf.Document, number: int, filename: str = "page.pdf",
                 ) -> list[pymupdf.Rect] | None:
    """Where the secrets of page `number` (1-based) are on the page, found as ingest finds them
    (the page's text with its neighbours', for keys broken by a page break); None when one of
    them cannot be located on the page (its picture must not be shown then)."""
    texts = [page_text(doc.load_page(i)) if 0 <= i < doc.page_count else ""
             for i in (number - 2, number - 1, number)]
    found = secrets.scan(texts[1], filename, texts[0], texts[2])
    page = doc.load_page(number - 1)
    rects: list[pymupdf.Rect] = []
    for value in found.values(texts[1]):
        located = page.search_for(value.strip()) if value.strip() else []
        if not located:
            return None
        rects += located
    return rects


def image_secret_rects(doc: pymupdf.Document, number: int, filename: str = "page.pdf",
                       language: str = "eng") -> list[pymupdf.Rect] | None:
    """Where secrets shown inside the pictures of page `number` (a screenshot of a terminal, a
    scanned note pasted into a report) are: the page's images are OCRed, as the text layer does
    not hold them. [] for a page without images, or when tesseract is missing (nothing can be
    read from them then); None when OCR fails or a secret it read cannot be located."""
    page = doc.load_page(number - 1)
    if not page.get_images() or not tesseract_available():
        return []
    try:
        tp = page.get_textpage_ocr(language=language, dpi=_OCR_DPI, full=False)
        text = page.get_text("text", textpage=tp)
    except Exception:
        return None
    found = secrets.scan(text, filename)
    rects: list[pymupdf.Rect] = []
    for value in found.values(text):
        located = page.search_for(value.strip(), textpage=tp) if value.strip() else []
        if not located:
            return None
        rects += located
    return _whole_words(page, tp, rects) if rects else []


def _whole_words(page: pymupdf.Page, tp: pymupdf.TextPage,
                 rects: list[pymupdf.Rect]) -> list[pymupdf.Rect]:
    """The OCR words a located value touches, whole: OCR's character boxes are estimates, and
    a value read one character short would leave the key's end visible."""
    words = [pymupdf.Rect(w[:4]) for w in page.get_text("words", textpage=tp)]
    touched = [w for w in rects + words if any(w.intersects(r) for r in rects)]
    # and a character's width more either side: OCR's word boxes can clip the last glyph
    return [w + (-w.height / 4, -2, w.height / 4, 2) for w in touched]


#: a scanned page is drawn at _OCR_DPI for OCR, but never over this many pixels (a PDF page
#: may claim 200 x 200 inches)
_OCR_MAX_PIXELS = 40_000_000


def _ocr_page(page: pymupdf.Page, language: str) -> str | None:
    """OCR one scanned page, drawn at _OCR_DPI and read by libtesseract as pictures are
    (ingest/ocr.py: 2x faster than PyMuPDF's OCR and reads text outside the main block);
    None if it cannot be drawn."""
    rect = page.rect
    scale = min(_OCR_DPI / 72, (_OCR_MAX_PIXELS / max(rect.width * rect.height, 1)) ** 0.5)
    try:
        pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), colorspace=pymupdf.csRGB,
                              alpha=False)
    except Exception:
        return None
    return _clean(ocr_rgb(pix.samples, pix.width, pix.height, language))


@dataclass(frozen=True)
class FigurePart:
    """A picture or a drawing on a page that is (part of) a figure."""

    key: tuple  # the same key on many pages marks decoration: a logo, a header band
    rect: pymupdf.Rect
    picture: bool  # a raster picture: its words are OCRed (a drawing's are in the text layer)


def _unrotated(page: pymupdf.Page) -> pymupdf.Rect:
    """The page's rectangle as its pictures, drawings and words are placed on it: unrotated."""
    return pymupdf.Rect(page.rect * page.derotation_matrix).normalize()


def _picture_parts(page: pymupdf.Page) -> list[FigurePart]:
    """The page's pictures that may be figures: not icons, not marks, not a scan of the page."""
    bounds = _unrotated(page)
    area = abs(bounds)
    parts = []
    for info in page.get_image_info():
        rect = pymupdf.Rect(info["bbox"]) & bounds
        if rect.is_empty or min(info["width"], info["height"]) < _MIN_PIXELS:
            continue
        if not _PART_SHARE <= abs(rect) / area < _SCAN_SHARE:
            continue
        key = ("picture", info["width"], info["height"], info["size"], info.get("cs-name"))
        parts.append(FigurePart(key, rect, True))
    return parts


Box = tuple[float, float, float, float]  # x0, y0, x1, y1: drawings are many, Rects are slow


def _clip(box: Box, bounds: Box) -> Box | None:
    x0, x1 = max(box[0], bounds[0]), min(box[2], bounds[2])
    y0, y1 = max(box[1], bounds[1]), min(box[3], bounds[3])
    return (x0, y0, x1, y1) if x0 <= x1 and y0 <= y1 else None


def _cells(box: Box, bounds: Box, size: float = _CELL) -> list[tuple[int, int]]:
    """The grid cells a box (a line too) touches inside `bounds` (the page)."""
    clipped = _clip(box, bounds)
    if clipped is None:
        return []
    x0, y0, x1, y1 = clipped
    return [(x, y) for x in range(int(x0 // size), int(x1 // size) + 1)
            for y in range(int(y0 // size), int(y1 // size) + 1)]


def _cell_size(boxes: list[list[Box]], bounds: Box) -> float:
    """The grid cell drawings are joined on: `_CELL`, or coarser where thousands of large filled
    shapes overlap (a map), so a page is joined in a bounded number of steps."""
    size, cells = _CELL, 0.0
    for group in boxes:
        for box in group:
            clipped = _clip(box, bounds)
            if clipped is not None:
                cells += (clipped[2] - clipped[0] + size) * (clipped[3] - clipped[1] + size)
    cells /= size * size
    while cells > _MAX_CELLS:
        size, cells = size * 2, cells / 4
    return size


def _span(*points: tuple[float, float]) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _outline(item: tuple) -> list[Box]:
    """Where a stroked item's ink is: a box's four edges, not its inside (a frame round the text
    of a page must not join everything it holds into one drawing)."""
    if item[0] == "re":
        x0, y0, x1, y1 = item[1]
        return [(x0, y0, x1, y0), (x0, y1, x1, y1), (x0, y0, x0, y1), (x1, y0, x1, y1)]
    points = list(item[1]) if item[0] == "qu" else list(item[1:])
    return [_span(a, b) for a, b in zip(points, points[1:] + points[:1], strict=True)]


def _shapes(path: dict, has_words, boxes: set[tuple[int, int]]) -> int:
    """How much of a chart or diagram a path draws: its curves (not a box's rounded corners)
    and slanted lines. Its filled boxes that hold no words go into `boxes` by size (in 4-pt
    steps): bars differ in size, while the empty cells of a table or the fields of a form are
    alike; a box behind words (a shaded table cell, a code block) is text's background. Rules,
    table borders, axes and underlines count nothing."""
    x0, y0, x1, y1 = path["rect"]
    corner = min(x1 - x0, y1 - y0) / 4  # a curve smaller than this rounds a box's corner
    count = 0
    for item in path["items"]:
        if item[0] == "c":
            span = _span(*item[1:])
            count += max(span[2] - span[0], span[3] - span[1]) >= corner
        elif item[0] == "l":
            (ax, ay), (bx, by) = item[1], item[2]
            count += abs(ax - bx) > 1 and abs(ay - by) > 1
        elif path.get("fill") is not None and min(path["fill"]) < 0.95:  # white draws nothing
            box = _span(*item[1]) if item[0] == "qu" else item[1]
            w, h = box[2] - box[0], box[3] - box[1]
            if w >= 3 and h >= 3 and not has_words(box):
                boxes.add((int(w // 4), int(h // 4)))
    return count


def _word_finder(page: pymupdf.Page, bounds: Box):
    """A test whether a box overlaps a word of the page (words read once, on first use): a box
    behind words is a text's background (a code block, a highlighted token), not a bar."""
    grid: dict[tuple[int, int], list[Box]] | None = None

    def has_words(box: Box) -> bool:
        nonlocal grid
        if grid is None:
            grid = {}
            for w in page.get_text("words"):
                word = (w[0] + 1, w[1] + 1, w[2] - 1, w[3] - 1)  # glyph boxes overlap a little
                for cell in _cells(word, bounds):
                    grid.setdefault(cell, []).append(word)
        return any(w[0] < box[2] and box[0] < w[2] and w[1] < box[3] and box[1] < w[3]
                   for cell in _cells(box, bounds) for w in grid.get(cell, ()))

    return has_words


def _components(marks: list[list[tuple[int, int]]]) -> list[int]:
    """The connected group (index) of each mark list, joining marks that touch or neighbour on
    the grid."""
    owner: dict[tuple[int, int], int] = {}
    parent = list(range(len(marks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, cells in enumerate(marks):
        for x, y in cells:
            for cell in ((x, y), (x - 1, y), (x, y - 1), (x - 1, y - 1), (x + 1, y - 1)):
                j = owner.get(cell)
                if j is not None:
                    parent[root(j)] = root(i)
            owner[(x, y)] = i
    return [root(i) for i in range(len(marks))]


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _drawing_parts(page: pymupdf.Page) -> list[FigurePart]:
    """The page's vector drawings that form a chart or a diagram: paths near each other are one
    drawing, which counts when it draws enough shapes (`_shapes`) over a share of the page."""
    bounds: Box = tuple(_unrotated(page))  # type: ignore[assignment]
    area = _area(bounds)
    paths = [p for p in page.get_cdrawings() if _area(p["rect"]) < _SCAN_SHARE * area]
    boxes = [[p["rect"]] if p.get("fill") is not None
             else [b for item in p["items"] for b in _outline(item)] for p in paths]
    size = _cell_size(boxes, bounds)
    marks = [[c for b in group for c in _cells(b, bounds, size)] for group in boxes]
    groups: dict[int, list[dict]] = {}
    for p, group in zip(paths, _components(marks), strict=True):
        groups.setdefault(group, []).append(p)
    has_words = _word_finder(page, bounds)
    parts = []
    for members in groups.values():
        box = _span(*[corner for p in members for corner in (p["rect"][:2], p["rect"][2:])])
        box = (max(box[0], bounds[0]), max(box[1], bounds[1]), min(box[2], bounds[2]),
               min(box[3], bounds[3]))
        if _area(box) < _PART_SHARE * area:
            continue
        sizes: set[tuple[int, int]] = set()
        if sum(_shapes(p, has_words, sizes) for p in members) + len(sizes) >= _MIN_SHAPES:
            parts.append(FigurePart(("drawing", *(round(v) for v in box)), pymupdf.Rect(box),
                                    False))
    return parts


def figure_parts(page: pymupdf.Page) -> list[FigurePart]:
    """The pictures and drawings of a page that may make it a figure page ([] when the page
    cannot be read that far: it is then a page of text, as before)."""
    try:
        return _picture_parts(page) + _drawing_parts(page)
    except Exception:
        return []


def figure_share(page_rect: pymupdf.Rect, parts: list[FigurePart]) -> float:
    """The share of the page its figure parts cover (overlaps counted once)."""
    covered = {c for part in parts for c in _cells(tuple(part.rect), tuple(page_rect))}
    cols = int(page_rect.x1 // _CELL) - int(page_rect.x0 // _CELL) + 1
    rows = int(page_rect.y1 // _CELL) - int(page_rect.y0 // _CELL) + 1
    return min(1.0, len(covered) / max(1, cols * rows))


def figure_pages(doc: pymupdf.Document) -> dict[int, list[FigurePart]]:
    """The pages (1-based) that carry a figure, with its parts: pictures and drawings that cover
    `FIGURE_SHARE` of the page, once those repeated on many pages (logos, letterheads, header
    bands) are left out."""
    found = [figure_parts(doc.load_page(i)) for i in range(doc.page_count)]
    seen = Counter(key for parts in found for key in {part.key for part in parts})
    limit = max(2, _REPEATED * doc.page_count)
    pages = {}
    for number, parts in enumerate(found, 1):
        kept = [part for part in parts if seen[part.key] < limit]
        if kept and figure_share(_unrotated(doc.load_page(number - 1)), kept) >= FIGURE_SHARE:
            pages[number] = kept
    return pages


def _capped(doc: pymupdf.Document, pages: dict[int, list[FigurePart]], flags: list[str],
            ) -> dict[int, list[FigurePart]]:
    """At most MAX_FIGURE_PAGES figure pages, the largest figures first (flagged when cut)."""
    if len(pages) <= MAX_FIGURE_PAGES:
        return pages
    flags.append(f"figures-capped:{len(pages)} figure pages, the {MAX_FIGURE_PAGES} largest read")
    share = {n: figure_share(_unrotated(doc.load_page(n - 1)), parts) for n, parts in pages.items()}
    keep = sorted(pages, key=lambda n: (-share[n], n))[:MAX_FIGURE_PAGES]
    return {n: pages[n] for n in sorted(keep)}


def _rgb(pix: pymupdf.Pixmap):
    from PIL import Image

    return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)


def _picture_text(page: pymupdf.Page, parts: list[FigurePart], options: PictureOptions) -> str:
    """The words on the page's figure pictures, read by OCR in reading order (a chart's labels
    and values that a text layer does not hold)."""
    largest = sorted((p for p in parts if p.picture), key=lambda p: -abs(p.rect))
    texts = []
    for part in sorted(largest[:MAX_PICTURES_READ], key=lambda p: (p.rect.y0, p.rect.x0)):
        inches = part.rect.width * part.rect.height / 72 / 72
        dpi = max(36, min(_OCR_DPI, int((options.max_pixels / 4 / max(inches, 1e-6)) ** 0.5)))
        # upright, as the picture was placed (a rotated page would show its words sideways)
        matrix = pymupdf.Matrix(dpi / 72, dpi / 72).prerotate(-page.rotation)
        pix = page.get_pixmap(matrix=matrix, clip=part.rect * page.rotation_matrix, alpha=False)
        text = pics.ocr(_rgb(pix), options)
        texts.append(text.strip())
    return "\n".join(t for t in texts if t)


def page_canvas(page: pymupdf.Page, max_tiles: int) -> tuple[float, int, int]:
    """The zoom and pixel size a page is drawn at for a vision target: as large as the tile
    canvas Llama 4's processor gives the page's shape (at most `max_tiles` 336-px tiles), and no
    larger, since the processor would only shrink it back."""
    w, h = page.rect.width, page.rect.height
    rows, cols = tile_grid(max(1, round(w * 100)), max(1, round(h * 100)), max_tiles)
    zoom = min(cols * TILE / w, rows * TILE / h)
    width, height = min(cols * TILE, int(w * zoom)), min(rows * TILE, int(h * zoom))
    return zoom, max(1, width), max(1, height)


def page_picture(page: pymupdf.Page, name: str, options: PictureOptions) -> Picture:
    """The page drawn as the JPEG a vision model receives (`page_canvas`'s size)."""
    zoom, width, height = page_canvas(page, options.max_tiles)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
    image = _rgb(pix)
    if image.size != (width, height):  # a pixel of rounding over the canvas
        image = image.resize((width, height))
    return pics.prepare(image, name, options)


def _figure_text(page: pymupdf.Page, number: int, parts: list[FigurePart], ocr_read: bool,
                 options: PictureOptions, folder: str) -> tuple[str, Picture | None]:
    """A figure page's `<picture>` tag (its pictures' words; for a vision target the drawn page)
    and its Picture; the tag is "" for a text target with no words read."""
    words = "" if ocr_read or not options.ocr else _picture_text(page, parts, options)
    picture = page_picture(page, f"{folder}/p{number}.jpg", options) if options.vision else None
    if picture is None and not words:
        return "", None
    _, width, height = page_canvas(page, options.max_tiles)
    return pics.tag(words, width, height, picture), picture


def _metadata(doc: pymupdf.Document) -> dict[str, str]:
    raw = doc.metadata or {}
    meta = {key: str(raw[key]).strip() for key in _METADATA_KEYS if raw.get(key)}
    meta = {key: value for key, value in meta.items() if value}
    meta["page_count"] = str(doc.page_count)
    return meta


def read_pdf(
    data: bytes,
    *,
    ocr: bool = True,
    ocr_language: str = "eng",
    max_pages: int | None = None,
    pictures: PictureOptions | None = None,
) -> PdfResult:
    """Read a PDF from bytes into one "page" segment per page (page numbers are 1-based).

    Pages without a text layer are OCRed when `ocr` is set and tesseract is available
    (flag "ocr:p<N>"), otherwise kept as empty segments (flag "no-text-layer:p<N>").
    With `pictures`, a page that carries a figure (flag "figure:p<N>", `figure_pages`) gets a
    `<picture>` tag after its text: the words OCRed on its pictures, and for a vision target
    the page drawn as a Picture (in `pictures`) with its image tokens as the segment's extra.
    Raises PdfError for encrypted, corrupt or empty PDFs and for more pages than `max_pages`.
    """
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:
        raise PdfError(f"corrupt PDF: {exc}") from exc

    with doc:
        if doc.needs_pass:
            raise PdfError("encrypted PDF (password required)")
        flags: list[str] = []
        if (doc.metadata or {}).get("encryption"):
            flags.append("encrypted-no-password")

        try:
            page_count = doc.page_count
        except Exception as exc:
            raise PdfError(f"corrupt PDF: {exc}") from exc
        if page_count == 0:
            if doc.is_repaired:
                raise PdfError("corrupt PDF: no readable pages")
            raise PdfError("empty PDF (no pages)")
        if max_pages is not None and page_count > max_pages:
            raise PdfError(f"PDF has {page_count} pages, over the limit of {max_pages}")

        can_ocr = ocr and tesseract_available()
        figures = _capped(doc, figure_pages(doc), flags) if pictures is not None else {}
        folder = hashlib.sha256(data).hexdigest()[:16]
        drawn: list[Picture] = []
        segments: list[Segment] = []
        for index in range(page_count):
            number = index + 1
            try:
                page = doc.load_page(index)
                text = page_text(page)
            except Exception as exc:
                raise PdfError(f"corrupt PDF: page {number}: {exc}") from exc
            if not text:
                ocr_text = _ocr_page(page, ocr_language) if can_ocr else None
                if ocr_text is None:
                    flags.append(f"no-text-layer:p{number}")
                else:
                    text = ocr_text
                    flags.append(f"ocr:p{number}")
            picture = None
            if number in figures and pictures is not None:
                flags.append(f"figure:p{number}")
                figure, picture = _figure_text(page, number, figures[number],
                                               f"ocr:p{number}" in flags, pictures, folder)
                text += figure
                drawn.extend([picture] if picture is not None else [])
            segments.append(
                Segment(order=index, text=text, span_kind="page", start=number, end=number,
                        extra_tokens=picture.image_tokens if picture is not None else 0)
            )

        try:
            metadata = _metadata(doc)
        except Exception:
            metadata = {"page_count": str(page_count)}

    return PdfResult(segments=segments, metadata=metadata, flags=flags, pictures=drawn)
