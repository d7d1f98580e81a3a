"""A corpus cut into parts that each fit one model call, every source in one or more of them.

Sources go in corpus order; one larger than a part is cut at its segments' edges (its pieces
keep their lines or pages, so citations still name real places). Source ids are global over the
parts ([S1] to [Sn] in corpus order), so a citation means one place at every reduce level.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace

from app.services.analysis.types import Coverage
from app.services.citations import ContextSource, sources_of
from app.services.tokencache import tokenizer as tokenizer_for
from engine.types import ModelTokenizer
from ingest.pack import Packer
from ingest.types import Document

WRAPPER_TOKENS = 40  # a source's tags and manifest line, in corpus tokens (an estimate)
SAFETY = 0.9  # the share of a part's budget filled by the estimate before it is counted


@dataclass
class Part:
    """One model call's share of the corpus: its packed text (global source ids) and the
    sources in it, as citations are checked against them."""

    position: int
    packed: str
    sources: list[ContextSource]
    paths: list[str]


def split(docs: list[Document], spec: str, name: str, budget: int, tok: ModelTokenizer,
          max_sources: int | None = None) -> tuple[list[Part], Coverage]:
    """Parts of at most `budget` model tokens each (counted exactly once packed), and of at
    most `max_sources` sources (an extraction's answer has a row for each), and how much of
    the corpus they hold."""
    corpus_tok = tokenizer_for(spec)
    docs = [d for d in docs if d.segments]
    coverage = Coverage(sources=len(docs), tokens=sum(d.tokens for d in docs))
    if not docs:
        return [], coverage
    sample = "".join(s.text for d in docs[:20] for s in d.segments)[:20_000] or "x"
    ratio = max(0.5, tok.count(sample) / max(1, corpus_tok.count(sample)))
    limit = max(64, int(budget / ratio * SAFETY))  # corpus tokens a part may hold
    cut: dict[str, str] = {}
    groups: list[list[Document]] = []
    group: list[Document] = []
    spent = 0
    for piece in _pieces(docs, limit - WRAPPER_TOKENS, cut, corpus_tok.count):
        cost = piece.tokens + WRAPPER_TOKENS
        if group and (spent + cost > limit or len(group) == (max_sources or 0)):
            groups.append(group)
            group, spent = [], 0
        group.append(piece)
        spent += cost
    if group:
        groups.append(group)
    parts: list[Part] = []
    for g in groups:
        parts += _fitted(g, spec, name, budget, tok, cut, len(parts), _next_id(parts))
    coverage.cut = [{"path": p, "why": why} for p, why in cut.items()]
    coverage.read = coverage.sources - len(cut)
    coverage.tokens_read = sum(d.tokens for d in docs if d.path not in cut)
    return parts, coverage


def _next_id(parts: list[Part]) -> int:
    return 1 + sum(len(p.sources) for p in parts)


def _pieces(docs: list[Document], limit: int, cut: dict[str, str],
            count: Callable[[str], int]):
    """Each document whole, or in pieces of at most `limit` tokens at its segments' edges; a
    segment larger than that is cut at its lines (a long line, or a page, mid-text), so every
    piece still names real lines or its page."""
    for doc in docs:
        if doc.tokens <= limit:
            yield doc
            continue
        run: list = []
        size = 0
        for seg in doc.segments:
            if seg.tokens > limit:
                if run:
                    yield _piece(doc, run)
                    run, size = [], 0
                yield from _finer(_piece(doc, [seg]), limit, cut, count)
                continue
            if run and size + seg.tokens > limit:
                yield _piece(doc, run)
                run, size = [], 0
            run.append(seg)
            size += seg.tokens
        if run:
            yield _piece(doc, run)


def _finer(piece: Document, limit: int, cut: dict[str, str], count: Callable[[str], int]):
    """The piece in halves until each is at most `limit` tokens."""
    if piece.tokens <= limit:
        yield piece
        return
    halves = _halved(piece, count)
    if halves is None:
        cut.setdefault(piece.path, "a piece too small to cut is larger than one model call "
                                   "can read")
        return
    for half in halves:
        yield from _finer(half, limit, cut, count)


def _halved(piece: Document, count: Callable[[str], int]) -> list[Document] | None:
    """The piece in two: at a segment's edge, else at its middle line (each half keeps its
    own line numbers), else mid-text at a space (a long line, a page: both halves keep the
    place); None for a piece of one character."""
    segs = piece.segments
    if len(segs) > 1:
        half = len(segs) // 2
        return [_piece(piece, segs[:half]), _piece(piece, segs[half:])]
    seg = segs[0]
    lines = seg.text.splitlines(keepends=True)
    if seg.span_kind == "lines" and len(lines) > 1 and seg.end - seg.start + 1 == len(lines):
        k = len(lines) // 2
        a, b = "".join(lines[:k]), "".join(lines[k:])
        first = replace(seg, text=a, end=seg.start + k - 1, tokens=count(a))
        second = replace(seg, text=b, start=seg.start + k, tokens=count(b))
    elif len(seg.text) > 1:
        mid = len(seg.text) // 2
        space = seg.text.rfind(" ", mid - 200, mid + 200)
        at = space if space > 0 else mid
        a, b = seg.text[:at], seg.text[at:]
        first, second = replace(seg, text=a, tokens=count(a)), replace(seg, text=b,
                                                                      tokens=count(b))
    else:
        return None
    return [_piece(piece, [first]), _piece(piece, [second])]


def _piece(doc: Document, segments: list) -> Document:
    segs = [replace(s, order=i) for i, s in enumerate(segments)]
    return replace(doc, segments=segs, tokens=sum(s.tokens for s in segs))


def _fitted(group: list[Document], spec: str, name: str, budget: int, tok: ModelTokenizer,
            cut: dict[str, str], position: int, first_id: int) -> list[Part]:
    """The group as one part when its packed text fits the budget, else as two halves (the
    estimate is checked by counting, so no part is ever over)."""
    part = _pack(group, spec, name, position, first_id)
    if tok.count(part.packed) <= budget:
        return [part]
    if len(group) == 1:  # one piece over the budget: the estimate was off; cut it finer
        halves = _halved(group[0], tokenizer_for(spec).count)
        if halves is None:
            cut.setdefault(group[0].path, "a piece too small to cut is larger than one model "
                                          "call can read")
            return []
        left, right = halves[:1], halves[1:]
    else:
        left, right = group[:len(group) // 2], group[len(group) // 2:]
    first = _fitted(left, spec, name, budget, tok, cut, position, first_id)
    second = _fitted(right, spec, name, budget, tok, cut, position + len(first),
                     first_id + sum(len(p.sources) for p in first))
    return first + second


def _pack(group: list[Document], spec: str, name: str, position: int, first_id: int) -> Part:
    packer = Packer(tokenizer_for(spec), "xml", name, toc="top", first_id=first_id)
    plan = packer.plan(group)  # the manifest names the blocks by their ids in the corpus
    buf = io.StringIO()
    packer.write(plan, buf)
    return Part(position, buf.getvalue(), sources_of(plan), list(dict.fromkeys(
        d.path for d in group)))
