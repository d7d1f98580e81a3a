"""The pipeline's own recall (`eval run --task retrieval --haystack CORPUS`): needles planted in
a copy of the user's corpus, scored by whether the context ask would build puts them in.

For each (length, sample) the first `length` tokens of the corpus (its sources in corpus order)
are copied into a scratch corpus with one needle per depth, each in the source that sits at that
depth, in the middle of a segment; the copy is indexed as an ingest indexes, each depth's
question is answered by `build_context` in auto mode (full when the copy fits the window, as
ask would), and the copy is removed. Nothing is sent to a model: a team sees what retrieval loses
before blaming the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from itertools import groupby

from app.services.access import Who
from app.services.catalog import remove_corpus
from app.services.context import build_context
from app.services.ingesting import store_documents
from app.services.snapshot import load_documents, open_snapshot
from app.services.tokencache import tokenizer as tokenizer_for
from engine.types import Backend, EngineError
from evals.runner import Cell, CellResult, EvalConfig
from evals.tasks import planted_needle
from ingest.types import Document, IngestError


def _prefix(docs: list[Document], length: int) -> list[Document]:
    """Sources from the start of the corpus until `length` tokens are reached."""
    out, total = [], 0
    for d in docs:
        if total >= length:
            break
        out.append(d)
        total += d.tokens
    return out


def _plant(docs: list[Document], depth: float, needle: str, count) -> list[Document]:
    """`docs` with `needle` as a line in the middle of the segment at `depth` of their tokens."""
    total = sum(d.tokens for d in docs) or 1
    target, seen = depth * total, 0
    for i, d in enumerate(docs):
        if seen + d.tokens >= target and d.segments:
            j = min(range(len(d.segments)), key=lambda k: abs(
                seen + sum(s.tokens for s in d.segments[:k]) - target))
            seg = d.segments[j]
            lines = seg.text.split("\n")
            lines.insert(len(lines) // 2, needle)
            text = "\n".join(lines)
            segs = list(d.segments)
            segs[j] = replace(seg, text=text, tokens=count(text) + seg.extra_tokens)
            planted = replace(d, segments=segs, sha256=hashlib.sha256(
                (d.sha256 + needle).encode()).hexdigest(),
                tokens=d.tokens - seg.tokens + segs[j].tokens)
            return docs[:i] + [planted] + docs[i + 1:]
        seen += d.tokens
    raise EngineError("the corpus has no text to plant a needle in")


def retrieval_cells(cells: list[Cell], config: EvalConfig, backend: Backend,
                    corpus: str, who: Who = None) -> Iterator[CellResult]:
    """One result per cell, in groups of (length, sample): each group's scratch corpus (made
    from a corpus `who` may read, and theirs) is built, asked once per depth, and removed,
    even when a cell fails."""
    try:
        spec, docs = load_documents(corpus, who=who)
    except IngestError as exc:
        raise EngineError(f"the retrieval task needs a stored corpus as its haystack: {exc}"
                          ) from None
    count = tokenizer_for(spec).count
    for (length, sample), group in groupby(cells, key=lambda c: (c.length, c.sample)):
        group = list(group)
        scratch = f"eval-retrieval-{uuid.uuid4().hex[:10]}"
        needles = {c.key: planted_needle(config.seed * 1000 + sample * 100 + i)
                   for i, c in enumerate(group)}
        copy = _prefix(docs, length)
        try:
            for c in group:
                copy = _plant(copy, max(c.depth, 0.0), needles[c.key][0], count)
            store_documents(scratch, spec, copy, who=who)
            for c in group:
                needle, question, answer = needles[c.key]
                t0 = time.perf_counter()
                result = CellResult(c, hashlib.sha256(f"{corpus}|{length}|{question}".encode())
                                    .hexdigest(), (answer,), "all")
                try:
                    with open_snapshot(scratch, who) as snap:
                        ctx = build_context(snap, question, "auto", backend, config.max_tokens)
                except EngineError as exc:
                    result.status, result.error = "failed", str(exc)
                    yield result
                    continue
                found = needle in ctx.packed
                result.score = 1.0 if found else 0.0
                result.response = (f"{ctx.mode}: needle {'in' if found else 'not in'} a "
                                   f"{ctx.cost.tokens if ctx.cost else 0:,}-token context of "
                                   f"{len(ctx.plan.blocks)} sources")
                result.prompt_tokens = ctx.cost.tokens if ctx.cost else 0
                result.total_s = time.perf_counter() - t0
                yield result
        except EngineError as exc:
            for c in group:
                yield CellResult(c, "", (), "all", status="failed", error=str(exc))
        finally:
            with contextlib.suppress(IngestError):  # never stored: nothing to remove
                remove_corpus(scratch, who=who)
