"""`analyze`: a briefing, an extraction or a comparison over a whole corpus, every source read.

The corpus is read from one snapshot (app.services.snapshot), cut into parts that fit the
model's window (one part when the corpus fits), and each part read by one map call; a briefing
or a comparison then reduces the notes level by level. Citations are checked against the
corpus; the result says its coverage and is stored with its owner; an interrupted analysis
resumes from the calls it finished.
"""

from __future__ import annotations

import hashlib
import json
import re

from app.services.access import Who
from app.services.analysis import diffs, extract, prompts, store
from app.services.analysis.mapreduce import Progress, Tally, reduce_all, run_calls
from app.services.analysis.parts import Part, split
from app.services.analysis.types import AnalysisResult, AnalyzeInput, Coverage
from app.services.citations import ContextSource, verify
from app.services.context import full_pack
from app.services.prompting import corpus_request
from app.services.snapshot import documents, open_snapshot
from app.settings import get_settings
from common.errors import UserError
from engine.types import Backend, CompletionRequest, EngineError
from ingest.types import Document


class Interrupted(UserError):
    """An analysis stopped part-way: its finished calls are kept, `analysis_id` resumes it."""

    def __init__(self, analysis_id: str, message: str):
        super().__init__(message)
        self.analysis_id = analysis_id


RESERVE = 384  # chat template and the call's own framing
GUIDE_LINE = re.compile(r"^\s*\[(S\d+)\]\s*(.+)$", re.M)


def analyze(asked: AnalyzeInput, backend: Backend, who: Who = None,
            progress: Progress | None = None, resume: str | None = None) -> AnalysisResult:
    """Run (or resume) the analysis `asked` over a corpus `who` may read."""
    docs, version, spec, changes = _read(asked, who)
    window = backend.window or get_settings().default_window
    tok = backend.tokenizer()
    fingerprint = hashlib.sha256(json.dumps(
        [backend.model, window, asked.max_tokens]).encode()).hexdigest()[:32]
    if asked.kind == "compare":
        docs = diffs.as_documents(changes)
        if not docs:
            analysis_id = store.begin(asked, version, fingerprint, who, resume)
            result = AnalysisResult(analysis_id, asked.kind, asked.corpus, version,
                                    Coverage(sources=2, read=2), text="no changes: the two "
                                    "sides are the same")
            store.finish(analysis_id, result.to_json())
            return result
    instruction = _instruction(asked)
    budget = window - asked.max_tokens - RESERVE - tok.count(instruction)
    if budget < 256:
        raise EngineError(f"the model's window ({window:,} tokens) leaves no room to read the "
                          "corpus in: lower --max-tokens, or use fewer fields")
    per_part = _sources_per_answer(asked)
    whole = None if per_part is not None and len(docs) > per_part else \
        _whole(docs, spec, asked, instruction, tok, window)
    if whole is not None:  # one call, over the very prefix `ask` and prewarm send
        parts, requests = [whole[0]], [whole[1]]
        coverage = Coverage(len(docs), len(docs), sum(d.tokens for d in docs),
                            sum(d.tokens for d in docs))
    else:
        parts, coverage = split(docs, spec, asked.corpus, budget, tok, per_part)
        if asked.kind == "compare":  # the model reads each change cut to its first lines
            _cut_changes(changes, coverage)
        requests = [prompts.map_request(instruction, p.packed, asked.max_tokens)
                    for p in parts]
    if not parts:
        raise EngineError(f"corpus {asked.corpus} has nothing to read for this analysis")
    analysis_id = store.begin(asked, version, fingerprint, who, resume)
    steps = store.StepStore(analysis_id)
    tally = Tally()
    try:
        result = _run(asked, parts, requests, coverage, budget + tok.count(instruction), tok,
                      backend, steps, tally, progress)
    except UserError as exc:  # a server gone, a call that failed: resumable, said how
        store.fail(analysis_id, str(exc))
        raise Interrupted(analysis_id, f"{exc}; analysis {analysis_id} keeps its finished "
                                       f"calls: --resume {analysis_id} goes on from there"
                          ) from None
    except BaseException as exc:  # Ctrl-C, a cancelled tool call: the caller says how
        store.fail(analysis_id, str(exc) or type(exc).__name__)
        exc.analysis_id = analysis_id  # type: ignore[attr-defined]
        raise
    result.analysis_id, result.corpus_version, result.changes = analysis_id, version, changes
    result.calls, result.resumed, result.levels = tally.calls, tally.resumed, tally.levels
    result.usage = tally.usage | {"engine_s": round(tally.seconds, 3)}
    if coverage.cut:
        result.notes.append(f"{len(coverage.cut)} of {coverage.sources} sources were not read "
                            "whole (see coverage.cut)")
    store.finish(analysis_id, result.to_json())
    return result


def _read(asked: AnalyzeInput, who: Who) -> tuple[list[Document], str, str, list[dict]]:
    """(documents, version, tokenizer spec, changes): what the analysis reads, from one
    snapshot (two for a comparison of corpora), closed before any model call."""
    with open_snapshot(asked.corpus, who) as snap:
        version, spec = snap.version, snap.tokenizer
        if not snap.sources:
            raise EngineError(f"corpus {asked.corpus} has no readable sources")
        docs = documents(snap, symbols=True)  # as a full-mode question reads them
    if asked.kind != "compare":
        return docs, version, spec, []
    if asked.other is None:
        by_path = {d.path: d for d in docs}
        for p in (asked.left, asked.right):
            if p not in by_path:
                raise EngineError(f"no source {p!r} in corpus {asked.corpus} (scoutlens "
                                  f"corpora show {asked.corpus} lists them)")
        changes = diffs.diff(by_path[asked.left], by_path[asked.right], asked.corpus,
                             asked.corpus)
        return [], version, spec, changes
    with open_snapshot(asked.other, who) as other:
        theirs = documents(other)
        version = f"{version[:32]}{other.version[:32]}"
    mine = {d.path: d for d in docs}
    their = {d.path: d for d in theirs}
    changes = []
    for path in sorted(set(mine) | set(their)):
        a, b = mine.get(path), their.get(path)
        if a is not None and b is not None and a.sha256 == b.sha256:
            continue
        changes += diffs.diff(a, b, asked.corpus, asked.other)
    return [], version, spec, changes


def _cut_changes(changes: list[dict], coverage: Coverage) -> None:
    """A change longer than the model is shown counts as not read whole (the exact change is
    in the result's `changes` all the same)."""
    cut = {c["path"] for c in coverage.cut}
    for n, c in enumerate(changes, 1):
        longest = max(c["before"].count("\n"), c["after"].count("\n")) + 1
        name = f"change {n}: {c['path']}"
        if longest > diffs.MAX_CHANGE_LINES and name not in cut:
            coverage.cut.append({"path": name, "why": f"the model read {diffs.MAX_CHANGE_LINES} "
                                 f"of its {longest} lines a side (the whole change is in "
                                 "`changes`)"})
            coverage.read -= 1


def _sources_per_answer(asked: AnalyzeInput) -> int | None:
    """An extraction's sources per call: its answer has a row for each (about 30 tokens a
    field), and a row cut off by max_tokens is a row lost."""
    if asked.kind != "extract":
        return None
    return max(1, asked.max_tokens // (20 + 30 * len(asked.fields)))


def _instruction(asked: AnalyzeInput) -> str:
    if asked.kind == "extract":
        return prompts.extract_map(list(asked.fields))
    return prompts.COMPARE_MAP if asked.kind == "compare" else prompts.BRIEF_MAP


def _whole(docs: list[Document], spec: str, asked: AnalyzeInput, instruction: str, tok,
           window: int) -> tuple[Part, CompletionRequest] | None:
    """The whole corpus as one call when it fits the window, packed as a full-mode question
    packs it (so a prewarmed corpus starts warm), the task after it; None when it does not
    fit (or a comparison's changes, which no question's prefix holds)."""
    if asked.kind == "compare" or not docs:
        return None
    if sum(d.tokens for d in docs) > window * 2:  # over the window in any tokenizer
        return None
    ctx = full_pack(docs, spec, asked.corpus)
    request = corpus_request(ctx.packed, instruction.strip(), asked.max_tokens)
    if tok.count_request(request).tokens + asked.max_tokens > window:
        return None
    return Part(0, ctx.packed, ctx.sources, [d.path for d in docs]), request


def _run(asked: AnalyzeInput, parts: list[Part], requests: list[CompletionRequest],
         coverage: Coverage, budget: int, tok, backend: Backend, steps, tally: Tally,
         progress: Progress | None) -> AnalysisResult:
    notes = run_calls(requests, 0, backend, steps, tally, progress)
    sources = [s for p in parts for s in p.sources]
    result = AnalysisResult("", asked.kind, asked.corpus, "", coverage)
    if asked.kind == "extract":
        result.columns = asked.names
        result.rows = extract.rows_of(
            notes, [p.sources for p in parts], asked.names,
            list(dict.fromkeys(x for p in parts for x in p.paths)),
            {pos for level, pos in tally.cut_off if level == 0},
            {c["path"]: c["why"] for c in coverage.cut})
        if tally.cut_off:
            result.notes.append(f"{len(tally.cut_off)} answers stopped at --max-tokens "
                                f"({asked.max_tokens}); the cells they left out say so")
        return result
    merge = prompts.COMPARE_REDUCE if asked.kind == "compare" else prompts.BRIEF_REDUCE
    text = reduce_all(notes, lambda group: prompts.reduce_request(merge, group,
                                                                  asked.max_tokens),
                      budget, tok, backend, steps, tally, progress)
    result.text = text.strip()
    result.citations = verify(result.text, sources)
    if asked.kind == "brief":
        result.guide = _guide(notes, sources)
    return result


def _guide(notes: list[str], sources: list[ContextSource]) -> dict[str, str]:
    """The per-source guide: the line each map call gave each of its sources."""
    path_of = {s.id: s.path for s in sources}
    guide: dict[str, str] = {}
    for note in notes:
        for sid, line in GUIDE_LINE.findall(note):
            path = path_of.get(sid)
            if path is not None and path not in guide:
                guide[path] = line.strip()[:600]
    return guide
