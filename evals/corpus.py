"""A user's ingested corpus as a haystack, and needles by modality planted in it.

The corpus is rendered the way `pack` renders it (one `<source>` wrapper per file, per PDF page
with its page number, videos as `<frame t=...>` text), and cycled when it is shorter than the
length asked. Each unit that can hold a modality needle is a `Span` with the offsets where a
needle may go: top-level line boundaries of a code file (so a planted function reads like the
file's own), line starts on a PDF page, the end of a frame's text. The depth picks the unit: the
needle goes to the allowed offset nearest `depth` of the way through the haystack.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from ingest.pack import Block, Renderer
from ingest.types import Document

_WORDS = ["amber", "basil", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo",
          "juniper", "kestrel", "lagoon", "meadow", "nectar", "onyx", "prairie", "quartz"]
_TOPLEVEL = re.compile(r"(?:\A|\n\s*\n)(?=\S)")  # a line that follows a blank line, unindented


@dataclass(frozen=True)
class Span:
    """One unit of the rendered corpus: a code file, a PDF page, a video frame, a text file."""

    kind: str  # code | pdf | video | text
    label: str  # what a citation would name: `src/app.py`, `report.pdf p.3`, `talk.mp4 @...`
    start: int
    end: int
    cuts: tuple[int, ...]  # absolute offsets where a needle may go
    language: str | None = None

    def shifted(self, by: int) -> Span:
        return replace(self, start=self.start + by, end=self.end + by,
                       cuts=tuple(c + by for c in self.cuts))


@dataclass(frozen=True)
class CorpusText:
    name: str
    text: str  # one pass over the corpus
    spans: tuple[Span, ...]

    def source(self, chars: int) -> str:
        """At least `chars` characters: the corpus, repeated when it is shorter."""
        return self.text * (chars // max(len(self.text), 1) + 1)

    def spans_of(self, kind: str) -> list[Span]:
        return [s for s in self.spans if s.kind == kind]

    def spans_within(self, chars: int) -> Iterator[Span]:
        """Spans of the repeated text that start before `chars`."""
        n = len(self.text)
        for cycle in range(chars // max(n, 1) + 1):
            for s in self.spans:
                if s.start + cycle * n < chars:
                    yield s.shifted(cycle * n)


def kind_label(kind: str) -> str:
    return {"code": "code files", "pdf": "PDF pages", "video": "video frames"}.get(kind, kind)


def render(name: str, docs: list[Document]) -> CorpusText:
    """The corpus as packed XML, with the span of every file, page and frame."""
    if not docs:
        raise ValueError(f"corpus {name} has no readable sources to make a haystack of")
    r = Renderer("xml")
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    n = 0

    def emit(path: str, attrs: dict[str, str], text: str) -> int:
        """Write one wrapped block; returns the offset where its body starts."""
        nonlocal pos, n
        n += 1
        block = Block(f"S{n}", path, attrs, text, 0)
        head = r.open(block)
        body = r.body(text)
        chunk = head + body + r.close(block) + r.close_tag()
        parts.append(chunk)
        start = pos + len(head)
        pos += len(chunk)
        return start

    for doc in docs:
        lang = {"language": doc.language} if doc.language else {}
        if doc.kind == "pdf":
            for seg in doc.segments:
                if not seg.text.strip():
                    continue
                at = emit(doc.path, {"page": str(seg.start)}, seg.text)
                body = r.body(seg.text)
                cuts = tuple(at + m.start() for m in re.finditer(r"^", body, re.M))
                spans.append(Span("pdf", f"{doc.path} p.{seg.start}", at, at + len(body), cuts))
        elif doc.kind == "video":
            attrs = {"media": "video", "duration": doc.metadata.get("duration", ""),
                     "frames": doc.metadata.get("frames", "0")}
            at = emit(doc.path, attrs, doc.text)
            for seg in doc.segments:
                text = r.body(seg.text)
                if text.startswith("<frame") and "</frame>" in text:
                    cut = at + text.rindex("</frame>")
                    spans.append(Span("video", f"{doc.path} {seg.label}", at, at + len(text),
                                      (cut,)))
                at += len(text)
        else:
            attrs = {}
            if doc.segments:
                attrs["lines"] = f"{doc.segments[0].start}-{doc.segments[-1].end}"
            at = emit(doc.path, {**attrs, **lang}, doc.text)
            body = r.body(doc.text)
            if doc.kind == "code":
                cuts = tuple(at + m.end() for m in _TOPLEVEL.finditer(body))
                end = at + len(body) + (0 if body.endswith("\n") else 1)
                spans.append(Span("code", doc.path, at, at + len(body), (*cuts, end),
                                  doc.language))
            else:
                cuts = tuple(at + m.start() for m in re.finditer(r"^", body, re.M))
                spans.append(Span("text", doc.path, at, at + len(body), cuts))
    return CorpusText(name, "".join(parts), tuple(spans))


def plant(corpus: CorpusText, kind: str, body: str, depth: float,
          needle_for: Callable[[Span], str]) -> tuple[str, Span, int, str]:
    """The needle for the unit of `kind` nearest `depth` of the way through `body` (a prefix of
    the repeated corpus), inserted at that unit's allowed offset nearest the depth.
    Returns the text, the span, the needle's offset and the needle."""
    want = len(body) * min(max(depth, 0.0), 1.0)
    best: tuple[float, int, Span] | None = None
    for span in corpus.spans_within(len(body)):
        if span.kind != kind:
            continue
        for cut in span.cuts:
            if cut <= len(body) and (best is None or abs(cut - want) < best[0]):
                best = (abs(cut - want), cut, span)
    if best is None:
        raise ValueError(f"corpus {corpus.name} has no {kind_label(kind)} within the length "
                         "asked")
    _, at, span = best
    needle = needle_for(span)
    return body[:at] + needle + body[at:], span, at, needle


# --- needles ------------------------------------------------------------------------------------

_CODE = {
    "python": "def {name}():\n    return {value}\n\n",
    "javascript": "function {name}() {{\n  return {value};\n}}\n\n",
    "typescript": "function {name}(): number {{\n  return {value};\n}}\n\n",
    "tsx": "function {name}(): number {{\n  return {value};\n}}\n\n",
    "go": "func {name}() int {{\n\treturn {value}\n}}\n\n",
    "rust": "fn {name}() -> u64 {{\n    {value}\n}}\n\n",
    "ruby": "def {name}\n  {value}\nend\n\n",
    "c": "long {name}(void) {{\n    return {value};\n}}\n\n",
    "cpp": "long {name}() {{\n    return {value};\n}}\n\n",
    "java": "static long {name}() {{\n    return {value};\n}}\n\n",
}


def modal_needle(task: str, rng: random.Random) -> tuple[Callable[[Span], str], str, str]:
    """(needle for a span, question, expected answer) for a modality task; the value is drawn
    from `rng`, so it does not depend on the depth."""
    value = str(rng.randrange(1_000_000, 9_999_999))
    if task == "code":
        name = f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}_checksum"

        def code(span: Span) -> str:
            return _CODE.get(span.language or "", _CODE["python"]).format(name=name, value=value)

        return code, (f"What does the function {name} return? Answer with the value only."), \
            value
    if task == "pdf":
        return (lambda span: f"The inspection reference number is {value}.\n",
                "What is the inspection reference number stated in the PDF? Answer with the "
                "number only.", value)
    if task == "video":
        return (lambda span: f" ACCESS CODE {value}",
                "Which access code is shown on a frame of the video? Answer with the code only.",
                value)
    raise ValueError(f"not a modality task: {task}")
