"""Grounding: the boxes and points a model writes over a picture, found in its answer and mapped
onto that picture, so the source viewer can draw them and the CLI can print them.

What Llama 4 is prompted with and emits. Meta's published prompt format for Llama 4
(meta-llama/llama-models, models/llama4/prompt_format.md; the same text on
https://www.llama.com/docs/model-cards-and-prompt-formats/llama4/) defines the image *input*
only: `<|image_start|>`, `<|patch|>` runs split by `<|tile_x_separator|>` and
`<|tile_y_separator|>`, `<|image|>` before the one-tile global view, `<|image_end|>`. It defines
no grounding tokens and no coordinate syntax; the model card names "image grounding" as a
strength without a format. So a grounded answer is plain text in whatever convention the prompt
asks for, and scoutlens asks (prompting.GROUNDING, added to the system prompt when pictures go
in) for `[x1, y1, x2, y2]` as fractions 0-1 of the picture's width and height from its top-left
corner, after the picture's source id. Fractions of the picture do not depend on the tile canvas the
model saw (ingest.pictures.prepare scales the JPEG with its aspect kept), so they map onto the
original picture's pixels as they are.

Models also write other conventions, tolerated here: JSON objects (`{"bbox_2d": [...],
"label": ...}`, `{"point_2d": [x, y]}`; `box_2d` is Gemini's [y1, x1, y2, x2]), `(x1, y1, x2,
y2)`, `(x1, y1)-(x2, y2)`, percentages, pixels of the picture (its size is in the `<picture
size="WxH">` tag the model read) and 0-1000 per-mille. The answer is only ever read with regular
expressions and `json.loads`: nothing in it is executed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from app.services.prompting import GROUNDING  # noqa: F401 - the format asked for, re-exported
from app.services.viewing import SourceView, source_view

MAX_MARKS = 100  # an answer full of numbers draws nothing absurd
BOX_COLOUR = (255, 0, 200)  # magenta: rare in diagrams, scans and screenshots

_NUM = r"-?\d+(?:\.\d+)?%?"
_SEP = r"\s*[,;]\s*"
_FOUR = re.compile(rf"[\[(]\s*({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})\s*[\])]")
_PAIRS = re.compile(rf"\(\s*({_NUM}){_SEP}({_NUM})\s*\)\s*(?:-|–|,|to)\s*"
                    rf"\(\s*({_NUM}){_SEP}({_NUM})\s*\)")
_TWO = re.compile(rf"[\[(]\s*({_NUM}){_SEP}({_NUM})\s*[\])]")
_OBJECT = re.compile(r"\{[^{}]{0,600}\}")
_CITE = re.compile(r"\[(S\d{1,5})\b[^\]\n]{0,200}\]")
_CITE_JUST_BEFORE = re.compile(r"\[S\d{1,5}\b[^\]\n]{0,200}\]\s*[:\-–]?\s*$")
PARAGRAPH_SPAN = 2_000  # how far back a mark looks for the citation it follows
_LABEL_AFTER = re.compile(r"\s*[:=\-–]?\s*[\"“'«]([^\"”'»\n]{1,80})[\"”'»]")
_LABEL_BEFORE = re.compile(r"[\"“']?([\w][\w .\-/#]{0,60}?)[\"”']?\s*[:=]\s*$")
_CUE = re.compile(r"\b(box(?:es)?|bbox|bounding|region|rectangle|point(?:s|ing)?|located|"
                  r"location|coordinates?|at)\b", re.IGNORECASE)
_TAG = re.compile(r'<picture size="(\d+)x(\d+)"')
_BOX_KEYS = ("bbox_2d", "bbox", "box", "bounding_box", "coordinates", "box_2d")
_POINT_KEYS = ("point_2d", "point", "points")


@dataclass(frozen=True)
class Mark:
    """A box (4 numbers) or a point (2) as the answer wrote it, before it is mapped."""

    kind: str  # box | point
    values: tuple[float, ...]
    unit: str  # "" (read from the values) | percent | permille
    label: str
    source: str | None  # the [S#] it follows or names
    at: int  # where in the answer


@dataclass(frozen=True)
class PictureRef:
    """A picture an answer may point at: its source id, how it is cited, its size in pixels."""

    id: str
    citation: str  # "network-diagram.png", "invoices-scan.tiff p.2"
    width: int
    height: int


@dataclass(frozen=True)
class Grounded:
    """A mark on a picture, in fractions 0-1 of its width and height (a point: x1 == x2)."""

    picture: PictureRef
    kind: str
    box: tuple[float, float, float, float]
    label: str

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box on a drawing of the picture `width` x `height` pixels."""
        x1, y1, x2, y2 = self.box
        return (round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height))

    def line(self) -> str:
        """`box [S3 network-diagram.png] (0.42, 0.10)-(0.61, 0.33): "uplink-7"`."""
        x1, y1, x2, y2 = self.box
        where = f"({x1:.2f}, {y1:.2f})" + ("" if self.kind == "point" else
                                           f"-({x2:.2f}, {y2:.2f})")
        label = f": {json.dumps(self.label, ensure_ascii=False)}" if self.label else ""
        return f"{self.kind} [{self.picture.id} {self.picture.citation}] {where}{label}"

    def to_json(self) -> dict:
        return {"source": self.picture.id, "citation": self.picture.citation, "kind": self.kind,
                "box": [round(v, 4) for v in self.box], "label": self.label}


# --- finding marks in an answer -----------------------------------------------------------------


def _number(text: str) -> float:
    return float(text.rstrip("%"))


def _source_near(answer: str, start: int, end: int) -> str | None:
    """The picture a mark is on: the last citation before it on its line, else the first after
    it on its line, else the last before it in its paragraph."""
    line_start = answer.rfind("\n", 0, start) + 1
    line_end = answer.find("\n", end)
    line_end = len(answer) if line_end < 0 else line_end
    before = list(_CITE.finditer(answer, line_start, start))
    after = _CITE.search(answer, end, line_end)
    top = max(answer.rfind("\n\n", 0, start) + 1, start - PARAGRAPH_SPAN)
    earlier = list(_CITE.finditer(answer, top, start))
    found = before[-1] if before else after or (earlier[-1] if earlier else None)
    return found.group(1) if found else None


def _label_near(answer: str, start: int, end: int) -> str:
    after = _LABEL_AFTER.match(answer, end)
    if after:
        return after.group(1).strip()
    line_start = answer.rfind("\n", 0, start) + 1
    before = _LABEL_BEFORE.search(answer[line_start:start])
    label = before.group(1).strip() if before else ""
    return "" if _CUE.fullmatch(label) or _CITE.search(label) else label


def _cued(answer: str, start: int, values: list[str]) -> bool:
    """Whether numbers in brackets are meant as coordinates, not a list of years: a cue word or
    a citation just before them, or all of them fractions or percentages."""
    before = answer[max(0, answer.rfind("\n", 0, start) + 1, start - 60):start]
    if _CUE.search(before) or _CITE_JUST_BEFORE.search(before):
        return True
    return all(v.endswith("%") or ("." in v and 0 <= float(v) <= 1) for v in values)


def _json_marks(answer: str) -> tuple[list[Mark], list[tuple[int, int]]]:
    marks, spans = [], []
    for m in _OBJECT.finditer(answer):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        mark = _mark_of(obj, answer, m.start(), m.end()) if isinstance(obj, dict) else None
        if mark is not None:
            marks.append(mark)
            spans.append(m.span())
    return marks, spans


def _numbers(value) -> tuple[float, ...] | None:
    if isinstance(value, list) and value and isinstance(value[0], list):  # [[x1,y1],[x2,y2]]
        value = [v for pair in value for v in pair] if len(value) == 2 else value[0]
    if isinstance(value, list) and len(value) in (2, 4) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return tuple(float(v) for v in value)
    return None


def _mark_of(obj: dict, answer: str, at: int, end: int) -> Mark | None:
    """A box or point from one JSON object a model wrote, if it holds one."""
    label = next((str(obj[k]) for k in ("label", "name", "text", "object") if k in obj), "")
    source = next((str(obj[k]) for k in ("source", "id", "picture") if k in obj), None)
    source = source.strip("[]") if source else _source_near(answer, at, end)
    for key in _BOX_KEYS + _POINT_KEYS:
        values = _numbers(obj.get(key))
        if values is None:
            continue
        if key == "box_2d" and len(values) == 4:  # Gemini: y before x, in 0-1000
            values = (values[1], values[0], values[3], values[2])
        kind = "box" if len(values) == 4 else "point"
        return Mark(kind, values, "permille" if key == "box_2d" else "", label[:80], source, at)
    return None


def find_marks(answer: str) -> list[Mark]:
    """Every box and point written in an answer, in order, at most MAX_MARKS."""
    marks, taken = _json_marks(answer)

    def free(start: int, end: int) -> bool:
        return not any(a < end and start < b for a, b in taken)

    for pattern, kind in ((_PAIRS, "box"), (_FOUR, "box"), (_TWO, "point")):
        for m in pattern.finditer(answer):
            if len(marks) >= MAX_MARKS:
                break
            values = list(m.groups())
            if not free(*m.span()) or not _cued(answer, m.start(), values):
                continue
            taken.append(m.span())
            unit = "percent" if all(v.endswith("%") for v in values) else ""
            marks.append(Mark(kind, tuple(_number(v) for v in values), unit,
                              _label_near(answer, m.start(), m.end()),
                              _source_near(answer, *m.span()), m.start()))
    return sorted(marks, key=lambda k: k.at)[:MAX_MARKS]


# --- mapping marks onto pictures ----------------------------------------------------------------


def _fractions(mark: Mark, width: int, height: int) -> tuple[float, ...] | None:
    """The mark's numbers as fractions of the picture: fractions, percentages, pixels of the
    picture (its size was in the tag the model read), else 0-1000; None if none fits."""
    values = mark.values
    xs, ys = values[0::2], values[1::2]
    if mark.unit == "percent":
        scaled = [v / 100 for v in values]
    elif mark.unit == "permille":
        scaled = [v / 1000 for v in values]
    elif all(0 <= v <= 1 for v in values):
        scaled = list(values)
    elif all(0 <= x <= width for x in xs) and all(0 <= y <= height for y in ys):
        scaled = [v / (width if i % 2 == 0 else height) for i, v in enumerate(values)]
    elif all(0 <= v <= 1000 for v in values):
        scaled = [v / 1000 for v in values]
    else:
        return None
    return tuple(min(1.0, max(0.0, v)) for v in scaled)


def _picture_for(mark: Mark, pictures: dict[str, PictureRef]) -> PictureRef | None:
    if mark.source in pictures:
        return pictures[mark.source]
    if mark.source is None and len(pictures) == 1:
        return next(iter(pictures.values()))
    return None


def ground(answer: str, pictures: list[PictureRef]) -> list[Grounded]:
    """The answer's boxes and points on the pictures they belong to (the source id they follow
    or name; the only picture when they name none), as fractions of each picture. A mark on no
    known picture, or whose numbers fit no convention, is left out."""
    by_id = {p.id: p for p in pictures}
    out = []
    for mark in find_marks(answer):
        picture = _picture_for(mark, by_id)
        f = _fractions(mark, picture.width, picture.height) if picture else None
        if picture is None or f is None:
            continue
        box = f if mark.kind == "box" else (f[0], f[1], f[0], f[1])
        x1, x2 = sorted((box[0], box[2]))
        y1, y2 = sorted((box[1], box[3]))
        out.append(Grounded(picture, mark.kind, (x1, y1, x2, y2), mark.label))
    return out


# --- which sources are pictures -----------------------------------------------------------------


def picture_size(text: str) -> tuple[int, int] | None:
    """The size a segment's first `<picture size="WxH">` tag gives, if it holds one."""
    m = _TAG.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def picture_citation(view: SourceView, src: dict) -> str:
    """How a picture is cited: the file alone, a TIFF's page, an embedded picture's part."""
    if src.get("page") is not None:
        return f"{view.path} p.{src['page']}"
    if src.get("part") and view.kind != "image":
        return f"{view.path} {src['part']}"
    return view.path


def picture_refs(corpus: str, sources: list[dict], who=None) -> list[PictureRef]:
    """The answer's sources that are pictures (their stored segment holds a picture tag), with
    the size the model was told."""
    out, views = [], {}
    for src in sources:
        path = src.get("path")
        if not path or not src.get("id"):
            continue
        if path not in views:
            try:
                views[path] = source_view(corpus, path, who=who)
            except Exception:  # noqa: BLE001 - a source gone since the answer: nothing to draw
                views[path] = None
        view = views[path]
        part = view.picture_part(src) if view is not None else None
        size = picture_size(part.text) if part is not None else None
        if size is not None:
            out.append(PictureRef(str(src["id"]), picture_citation(view, src), *size))
    return out


def answer_marks(corpus: str, answer: str, sources: list[dict], who=None) -> list[Grounded]:
    """The boxes and points of an answer over a corpus, on the pictures among its sources."""
    if not answer or not sources:
        return []
    pictures = picture_refs(corpus, sources, who)
    return ground(answer, pictures) if pictures else []


# --- drawing ------------------------------------------------------------------------------------


def draw(image, marks: list[Grounded]):
    """The marks drawn on a copy of an RGB PIL image (the picture as the user sees it): boxes as
    rectangles, points as rings, each with its label."""
    from PIL import ImageDraw, ImageFont

    out = image.copy()
    pen = ImageDraw.Draw(out)
    side = max(out.width, out.height)
    width = max(4, side // 160)  # still a line when the page shows the picture smaller
    font = ImageFont.load_default(size=max(14, side // 40))
    for mark in marks:
        x1, y1, x2, y2 = mark.pixels(out.width, out.height)
        if mark.kind == "point":
            r = max(6, side // 80)
            pen.ellipse((x1 - r, y1 - r, x1 + r, y1 + r), outline=BOX_COLOUR, width=width)
        else:
            pen.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=BOX_COLOUR, width=width)
        if mark.label:
            left, top, right, bottom = pen.textbbox((x1, 0), mark.label, font=font)
            top = max(0, y1 - (bottom - top) - 2 * width)  # above the box, on the picture
            pen.rectangle((left - 2, top, right + 2, top + bottom + 2), fill=BOX_COLOUR)
            pen.text((x1, top), mark.label, fill=(255, 255, 255), font=font)
    return out


def result_marks(result, who=None) -> list[Grounded]:
    """The marks of an ask result (app.services.ask.AskResult) on its picture sources."""
    return answer_marks(result.corpus, result.answer, [s.to_json() for s in result.sources],
                        who)
