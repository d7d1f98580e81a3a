"""Citations: find the source ids an answer cites, verify each against the context, and fall back
to matched evidence when a model cites nothing valid.

A citation is `[S12]`, optionally with a location (`[S12 L40-L62]`, `[S12:40-62]`, `[S3 p.4]`,
several ids in one bracket: `[S1, S4]`; a part of an Office file, web page, mail or e-book:
`[S7 slide 5 (notes)]`, `[S9 Opex!A1:C5]`). It is verified when the id was in the context, any
location lies inside that source (a part's: its locator), and any text quoted right before it
is found in the source (whitespace and case folded). Small models often cite nothing: then the
spans of the context that best match the answer are returned, marked "matched", never passed
off as citations.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.pack import PackResult

BRACKET = re.compile(r"\[((?:S\d+)(?:[^\]\[]{0,40}))\]")
ONE = re.compile(r"S(\d+)(?:\s*[:,]?\s*(?:@\s*(\d{1,2}:\d{2}(?::\d{2})?)"
                 r"|(?:L|lines?\s*)?(\d+)(?:\s*[-–]\s*L?(\d+))?"
                 r"|p(?:age|\.)?\s*(\d+)))?", re.IGNORECASE)
FRAME_T = re.compile(r'<(?:frame|subtitle) t="(\d{2}:\d{2}:\d{2})\.\d{3}"')
QUOTE = re.compile(r"[\"“]([^\"”]{8,300})[\"”]\s*$")
PIECE = re.compile(r"S(\d+)\s*[:,]?\s*((?:(?!\s*[,;]\s*S\d)[^\]])*)", re.IGNORECASE)
NOT_A_PART = re.compile(r"(?:@|L?\d|lines?\s*\d|p(?:age|\.)?\s*\d)", re.IGNORECASE)


@dataclass(frozen=True)
class ContextSource:
    """One source as it was in the context: id, provenance and the text the model saw."""

    id: str
    path: str
    kind: str  # code | text | pdf | notebook | video | part
    text: str
    line_start: int | None = None
    line_end: int | None = None
    page: int | None = None
    t: str | None = None  # video timestamp
    part: str | None = None  # a part's locator: "slide 5 (notes)", "Opex!A1:C5"

    def location(self) -> dict:
        if self.part is not None:
            return {"part": self.part}
        if self.page is not None:
            return {"page": self.page}
        if self.t is not None:
            return {"t": self.t}
        if self.line_start is not None:
            return {"lines": f"{self.line_start}-{self.line_end}"}
        return {}

    def label(self) -> str:
        loc = self.location()
        if "part" in loc:
            return f"{self.path} {loc['part']}"
        if "page" in loc:
            return f"{self.path} p.{loc['page']}"
        if "t" in loc:
            return f"{self.path} @{loc['t']}"
        if "lines" in loc:
            return f"{self.path}:L{self.line_start}-L{self.line_end}"
        return self.path


@dataclass
class SourceRef:
    id: str
    path: str
    quote: str
    verified: bool
    kind: str  # cited | matched
    lines: str | None = None
    page: int | None = None
    t: str | None = None
    why: str = ""  # why a citation failed verification
    part: str | None = None  # a part's locator

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "why"}
        if self.why:
            d["why"] = self.why
        return d

    def label(self) -> str:
        if self.part is not None:
            return f"{self.path} {self.part}"
        if self.page is not None:
            return f"{self.path} p.{self.page}"
        if self.t is not None:
            return f"{self.path} @ {self.t}"
        if self.lines:
            a, _, b = self.lines.partition("-")
            return f"{self.path}:L{a}-L{b}"
        return self.path


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _lines_of(text: str, start: int, first: int, last: int) -> str:
    lines = text.split("\n")
    return "\n".join(lines[max(0, first - start): max(0, last - start + 1)])


def _clock(text: str) -> str:
    """'1:23' or '00:01:23' -> '00:01:23'."""
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return "{:02d}:{:02d}:{:02d}".format(*parts)


def parse_citations(answer: str) -> list[tuple[str, int | None, int | None, int | None, str]]:
    """(id, line_from, line_to, page, quote before it) for every id cited, in order; video times
    (`[S3 @ 01:23]`) are read by `parse_times`."""
    found = []
    for m in BRACKET.finditer(answer):
        before = answer[max(0, m.start() - 320): m.start()]
        q = QUOTE.search(before)
        quote = q.group(1) if q else ""
        for one in ONE.finditer(m.group(1)):
            a = int(one.group(3)) if one.group(3) else None
            b = int(one.group(4)) if one.group(4) else a
            page = int(one.group(5)) if one.group(5) else None
            found.append((f"S{one.group(1)}", a, b, page, quote))
    return found


def parse_parts(answer: str) -> dict[str, list[str]]:
    """Part locations cited per id: `[S7 slide 5 (notes)]` -> {"S7": ["slide 5 (notes)"]};
    lines, pages and times are left to the parsers above."""
    given: dict[str, list[str]] = {}
    for m in BRACKET.finditer(answer):
        for one in PIECE.finditer(m.group(1)):
            rest = one.group(2).strip(" ,;:")
            if rest and not NOT_A_PART.match(rest):
                given.setdefault(f"S{one.group(1)}", []).append(rest)
    return given


def _part_mismatch(part: ContextSource, given: list[str]) -> str:
    """Why a part citation's location is not that part ("" when it is): the cited text must
    be its locator, or the start of it (a bracket holds 40 characters)."""
    for text in given:
        cited, actual = _fold(text), _fold(part.part or "")
        if not (actual.startswith(cited) or cited.startswith(actual)):
            return f"{text!r} is not where {part.id} is ({part.label()})"
    return ""


def parse_times(answer: str) -> dict[str, list[str]]:
    """Video times cited per id: `[S3 @ 1:23]` -> {"S3": ["00:01:23"]}."""
    times: dict[str, list[str]] = {}
    for m in BRACKET.finditer(answer):
        for one in ONE.finditer(m.group(1)):
            if one.group(2):
                times.setdefault(f"S{one.group(1)}", []).append(_clock(one.group(2)))
    return times


def verify(answer: str, sources: list[ContextSource]) -> list[SourceRef]:
    """Every citation in `answer`, checked against the sources that were in the context."""
    by_id: dict[str, list[ContextSource]] = {}
    for s in sources:
        by_id.setdefault(s.id, []).append(s)
    refs: list[SourceRef] = []
    seen: set[tuple] = set()
    times = parse_times(answer)
    parts_given = parse_parts(answer)
    for sid, clocks in times.items():  # video citations: the time must be a frame or a cue
        for clock in dict.fromkeys(clocks):
            part = by_id.get(sid, [None])[0]
            if part is None:
                refs.append(SourceRef(sid, "", "", False, "cited", t=clock,
                                      why="no such source in context"))
                continue
            at = [m.start() for m in FRAME_T.finditer(part.text) if m.group(1) == clock]
            why = "" if at else f"no frame or subtitle at {clock} in context"
            line = part.text[at[0]:].split("\n", 1)[0] if at else ""
            refs.append(SourceRef(sid, part.path, _snippet(re.sub(r"<[^>]+>", " ", line)),
                                  not why, "cited", t=clock, why=why))
            seen.add((sid, None, None, None, ""))  # the bare id is covered by its time
    for sid, a, b, page, quote in parse_citations(answer):
        key = (sid, a, b, page, quote)
        if key in seen:
            continue
        seen.add(key)
        parts = by_id.get(sid)
        if not parts:
            refs.append(SourceRef(sid, "", quote, False, "cited", why="no such source in context"))
            continue
        part = parts[0]
        why = ""
        if page is not None:
            match = [p for p in parts if p.page == page]
            if match:
                part = match[0]
            else:
                why = f"page {page} was not in context"
        if part.part is not None and not why:
            why = _part_mismatch(part, parts_given.get(sid, []))
            if a is not None and not why:
                why = f"lines {a}-{b} are not a place in {part.label()}: cite the part"
        text = "\n".join(p.text for p in parts) if page is None else part.text
        lines = None
        if a is not None and part.line_start is not None and not why:
            if part.line_start <= a <= (b or a) <= (part.line_end or a):
                lines = f"{a}-{b}"
                text = _lines_of(part.text, part.line_start, a, b or a)
            else:
                why = f"lines {a}-{b} are outside {part.label()}"
        if quote and not why and _fold(quote) not in _fold(text):
            why = "the quoted text is not in the source"
        loc = part.location()
        refs.append(SourceRef(sid, part.path, quote or _snippet(text), not why, "cited",
                              lines=lines or loc.get("lines"), page=loc.get("page"),
                              t=loc.get("t"), why=why, part=loc.get("part")))
    return refs


def _snippet(text: str, size: int = 160) -> str:
    flat = " ".join(text.split())
    return flat[:size] + ("…" if len(flat) > size else "")


def matched_evidence(answer: str, sources: list[ContextSource], top: int = 3,
                     window: int = 6) -> list[SourceRef]:
    """Spans of the context sharing the most distinctive words with the answer (not citations).

    Each source is scanned in windows of `window` lines; a window scores the answer words it
    contains, weighted by how rare each word is across the context (an IDF), so "the code is
    7291" finds the line with 7291, not every line with "code".
    """
    from ingest.retrieval import terms

    words = set(terms(answer))
    if not words or not sources:
        return []
    docs = [set(terms(s.text)) for s in sources]
    import math

    df = {w: sum(1 for d in docs if w in d) for w in words}
    weight = {w: math.log((len(docs) + 1) / (df[w] + 0.5)) for w in words if df[w]}
    if not weight:
        return []
    spans: list[tuple[float, int, str, int, int]] = []
    for i, s in enumerate(sources):
        lines = s.text.split("\n")
        size = 1 if s.kind == "video" else window  # a video line is one frame or one cue
        for start in range(0, max(1, len(lines)), max(1, size // 2)):
            chunk = "\n".join(lines[start:start + size])
            present = set(terms(chunk)) & weight.keys()
            score = sum(weight[w] for w in present)
            if score > 0:
                spans.append((score, i, chunk, start, min(len(lines), start + size)))
    spans.sort(key=lambda x: -x[0])
    out: list[SourceRef] = []
    used: set[int] = set()
    best = spans[0][0] if spans else 0.0
    for score, i, chunk, start, end in spans:
        if i in used or score < best / 2:  # far weaker than the best match: not evidence
            continue
        used.add(i)
        s = sources[i]
        lines = None
        if s.line_start is not None:
            first = s.line_start + start
            last = s.line_start + max(start, end - 1)
            last = min(last, s.line_end or last)
            lines = f"{first}-{last}"
        t = s.t
        if s.kind == "video" and (m := FRAME_T.search(chunk)):
            t, lines = m.group(1), None
        if s.part is not None:
            lines = None
        out.append(SourceRef(s.id, s.path, _snippet(re.sub(r"<[^>]+>", " ", chunk)), True,
                             "matched", lines=lines, page=s.page, t=t, part=s.part))
        if len(out) == top:
            break
    return out


def sources_of(plan: PackResult) -> list[ContextSource]:
    """The sources of a pack as the model sees them, with the places citations may name."""
    out = []
    for b in plan.blocks:
        a = b.attrs
        start = end = page = None
        if "lines" in a:
            s, _, e = a["lines"].partition("-")
            start, end = int(s), int(e or s)
        if "page" in a:
            page = int(a["page"])
        kind = ("video" if a.get("media") == "video" else "pdf" if page
                else "part" if "part" in a else "text")
        out.append(ContextSource(b.id, b.path, kind, b.text, start, end, page, a.get("t"),
                                 a.get("part")))
    return out
