"""Eval runs in the database: start or resume a run, store every cell as it finishes, report and
compare. A cell is written in its own transaction the moment it is scored, and cells are unique
per (run, task, length, depth, sample): an interrupted run resumes with the same run id, skips
what is done, retries what failed, and never duplicates or loses a finished cell."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

from sqlalchemy import delete, select

from app.database import session_scope
from app.models import EvalCell, EvalRun
from app.services.access import Who, audit, can_change, owner_of_new
from app.services.retrieval_eval import retrieval_cells
from app.settings import database_url, get_settings
from engine.types import Backend, EngineError
from evals.haystack import KINDS
from evals.report import CellScore
from evals.ruler_report import Prediction
from evals.runner import EvalConfig, check_window, needs, plan_cells, run_cells
from evals.runner import too_long as runner_too_long
from evals.tasks import (
    LONGBENCH,
    MRCR,
    PIPELINE_TASKS,
    PUBLISHED_TASKS,
    RAW,
    RULER,
    Generator,
    score_text,
)
from ingest.tokenizers import Tokenizer

WINDOW_RESERVE = 64  # evals.runner.check_window's default reserve


@dataclass
class RunSummary:
    run_id: str
    created_at: str
    status: str
    cells: int
    done: int
    failed: int
    mean: float | None
    config: dict
    fingerprint: dict


def fingerprint(backend: Backend) -> dict:
    """What identifies the endpoint: compare warns when two runs differ in any of these."""
    return backend.describe()


def fingerprint_diff(run_a: str, run_b: str, who: Who = None) -> dict[str, tuple]:
    """What differs between the endpoints of two runs: {field: (A's, B's)}."""
    a, b = summary(run_a, who).fingerprint, summary(run_b, who).fingerprint
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def dry_run(config: EvalConfig, gen: Generator | None = None,
            window: int | None = None) -> dict:
    """Requests and prompt tokens, counted from the grid alone: no prompt is sent, no model
    loaded. With the target's `window`, `too_long` lists the lengths the real run would refuse."""
    cells = plan_cells(config)
    tokens, over = 0, set()
    for c in cells:  # a published suite's cells are counted exactly, from its files
        if gen is not None and c.task in PUBLISHED_TASKS:
            try:
                sample = gen.sample(c.task, c.length, -1.0, index=c.sample)
            except ValueError as exc:
                raise EngineError(str(exc)) from None
            n = sample.meta["tokens"]
            tokens += n
            if window is not None and needs(config, c.task, n, WINDOW_RESERVE,
                                            sample.max_tokens) > window:
                over.add(c.length)
        else:
            tokens += c.length
    return {"requests": len(cells), "prompt_tokens": tokens,
            "per_task": {t: sum(c.task == t for c in cells) for t in config.tasks},
            "cells": [c.key for c in cells[:20]], "window": window,
            "too_long": sorted(set(too_long(config, window)) | over)}


def too_long(config: EvalConfig, window: int | None) -> list[int]:
    """Lengths that do not fit `window` with the answer reserved (check_window's rule)."""
    return runner_too_long(config, window, WINDOW_RESERVE)


def target_window(backend: str | None, endpoint: str | None,
                  model: str | None) -> tuple[int | None, str]:
    """The window of the model a run would use, for a dry run: the served max_model_len (one
    GET /v1/models, nothing else sent) or the model folder's config.json (nothing loaded).
    (None, why) when it cannot be known; a URL or backend that is wrong is an EngineError, as
    in a real run."""
    from app.services.backends import BACKENDS, BUNDLED_MODEL
    from engine.arch import model_window

    s = get_settings()
    endpoint = endpoint or s.endpoint
    backend = backend or ("openai" if endpoint else s.backend)
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}: {' | '.join(BACKENDS)}")
    if backend == "openai":
        if not endpoint:
            raise EngineError("the openai backend needs --endpoint URL (or SCOUTLENS_ENDPOINT)")
        from engine.openai_backend import OpenAIBackend

        server = OpenAIBackend(endpoint, model=model or None, max_retries=0,
                               connect_timeout=3.0, info_timeout=5.0)
        try:
            window = server.window
        except EngineError as exc:
            return None, f"the model's window is unknown ({exc})"
        return window, "" if window else f"{server.base_url} does not say its model's window"
    folder = model or s.model
    if folder:
        window = model_window(folder)
        return window, "" if window else f"the window of {folder} is unknown (no config.json)"
    from engine.vllm_flags import CPU_WINDOW

    # the bundled model, converted or not yet (app.services.backends.bundled_model_dir)
    return model_window(s.home_dir / "models" / BUNDLED_MODEL) or CPU_WINDOW, ""


def report_dir(run_id: str) -> Path:
    """Where `eval report` writes without --out: SCOUTLENS_HOME/reports/eval-RUN, never the
    current folder; the run id is made a plain folder name (no `/`, no leading dots)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).lstrip(".") or "run"
    return get_settings().home_dir / "reports" / f"eval-{safe}"


def _run_row(s, run_id: str, who: Who) -> EvalRun:
    """Run `run_id` if `who` may see it (its owner, admins, the operator); else the same
    "no such eval run" as for one that does not exist."""
    row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
    if row is None or not can_change(who, row.owner):
        raise EngineError(f"no such eval run: {run_id} (scoutlens eval list)")
    return row


def stored_config(run_id: str, who: Who = None) -> EvalConfig | None:
    """The config a run was started with (a resumed run keeps it, whatever the flags say);
    None for a new run id. Someone else's run id is refused as not found."""
    with session_scope(database_url()) as s:
        if s.scalar(select(EvalRun.id).where(EvalRun.run_id == run_id)) is None:
            return None
        return EvalConfig.from_json(dict(_run_row(s, run_id, who).config))


ROUNDTRIP = "The grass is green. 1234567"


def _own_tokenizer(backend: Backend) -> Tokenizer | None:
    """The backend's tokenizer when it is exact and decodes back what it encodes (a haystack
    is cut by token ids), else None."""
    tok = backend.tokenizer()
    try:
        return tok if tok.exact and tok.decode(tok.encode(ROUNDTRIP)) == ROUNDTRIP else None
    except EngineError:
        return None


def corpus_haystack(config: EvalConfig) -> str | None:
    """The stored corpus a config's haystack names (`corpus:NAME` or a bare NAME), or None
    for a generated one."""
    from evals.haystack import KINDS

    if config.haystack in KINDS:
        return None
    return config.haystack.removeprefix("corpus:")


def generator_for(config: EvalConfig, backend: Backend, tokenizer: str | None = None,
                  warn: Callable[[str], None] | None = None,
                  who: Who = None) -> tuple[Generator, EvalConfig]:
    """The task generator for a config and its target: lengths counted by the server's own
    `/tokenize` when the backend is an endpoint that has one, else by `tokenizer` (default: the
    embedded model's, or cl100k for an endpoint); the haystack generated or a stored corpus.
    The config comes back with the tokenizer that counted its lengths. A corpus haystack must
    be one `who` may read."""
    from app.services.tokencache import tokenizer as load_tokenizer
    from evals.haystack import KINDS

    spec = tokenizer or config.tokenizer or ""
    if spec.startswith(("model:", "server:")):  # a resumed run counted with the backend's own
        spec = ""
    tok = _own_tokenizer(backend) if not spec else None
    if tok is None and not spec and warn:
        warn("the server has no /tokenize and /detokenize: lengths are counted with "
             "cl100k, approximate for this model (--tokenizer to choose)")
    if tok is None:
        tok = load_tokenizer(spec or "cl100k")
    haystack = config.haystack
    if all(t in PIPELINE_TASKS for t in config.tasks):
        haystack = "prose"  # nothing generated: retrieval cells plant in the corpus itself
    if haystack not in KINDS:
        from app.services.snapshot import load_documents
        from evals.corpus import render

        name = haystack.removeprefix("corpus:")
        _, docs = load_documents(name, who=who)
        try:
            haystack = render(name, docs)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
    return (Generator(tok.encode, tok.decode, haystack, data=config.data or None),
            replace(config, tokenizer=tok.spec))


def preflight(config: EvalConfig, gen: Generator, window: int | None = None) -> None:
    """One sample per task at the shortest length, so a task that cannot be built (too short,
    no PDF page in the corpus, a RULER file missing) is refused before anything is sent; a
    published file's records, and RULER's files and first record at each length, are read and
    checked here."""
    for task in config.tasks:
        if task in PIPELINE_TASKS:  # needs a stored corpus: checked when it loads it
            if config.haystack in KINDS:
                raise EngineError(f"the {task} task plants needles in a stored corpus: use "
                                  "--haystack CORPUS (scoutlens corpora list)")
            continue
        try:
            if task in RULER:  # each length's files, haystack size and first record
                for n in config.lengths:
                    gen.check_ruler(task, n, config.samples, config.seed)
                continue
            gen.sample(task, min(config.lengths), config.depths[0], seed=config.seed)
            if task in PUBLISHED_TASKS:  # every record the grid reads, checked before a send
                for n in config.lengths:
                    gen.check_published(task, n, config.samples)
                    # an MRCR bin's conversations differ in size: each is counted
                    for i in range(config.samples if task in MRCR else 1):
                        _fits(gen.sample(task, n, -1.0, seed=config.seed, index=i), config,
                              window)
        except ValueError as exc:
            raise EngineError(str(exc)) from None


def _fits(sample, config: EvalConfig, window: int | None) -> None:
    """A published file's prompt is as long as it is, not its nominal length: counted."""
    tokens = sample.meta.get("tokens", 0)
    need = needs(config, sample.task, tokens, WINDOW_RESERVE, sample.max_tokens)
    if window is not None and need > window:
        where = sample.meta.get("file") or f"length {sample.length:,}"
        raise EngineError(f"{sample.task} at {where}: its prompts are {tokens:,} tokens, over "
                          f"the model's window of {window:,} with {need - tokens - WINDOW_RESERVE}"
                          " answer tokens reserved: drop that length")


def run(config: EvalConfig, backend: Backend, gen: Generator, run_id: str | None = None,
        progress: Callable[[int, int], None] | None = None, who: Who = None) -> str:
    run_id = run_id or uuid.uuid4().hex[:10]
    stored = stored_config(run_id, who)  # a resumed run keeps its own grid
    if stored is not None:  # ... but reads its published files where they are now
        config = replace(stored, data=config.data or stored.data)
    name = corpus_haystack(config)
    if name is not None:  # a haystack from a corpus `who` may read (either spelling)
        from app.services.access import CorpusNotFound
        from app.services.catalog import corpus_exists

        if not corpus_exists(name, who=who):
            raise CorpusNotFound(f"no such corpus: {name!r}")
    check_window(config, backend.window)
    preflight(config, gen, backend.window)
    with session_scope(database_url()) as s:
        row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
        if row is None:
            s.add(EvalRun(run_id=run_id, config=config.to_json(), owner=owner_of_new(who),
                          fingerprint=fingerprint(backend), status="running"))
            audit(s, who, "eval", run_id, tasks=list(config.tasks), haystack=name)
        else:
            row.status = "running"
        done = {(c.task, c.length, round(c.depth, 4), c.sample) for c in s.scalars(
            select(EvalCell).where(EvalCell.run_id == run_id, EvalCell.status == "done"))}
        s.execute(delete(EvalCell).where(EvalCell.run_id == run_id,
                                         EvalCell.status == "failed"))  # retried now
    cells = [c for c in plan_cells(config) if c.key not in done]
    total, finished = len(done) + len(cells), len(done)
    if progress:
        progress(finished, total)
    concurrency = config.concurrency if backend.concurrent else 1
    try:
        model_cells = [c for c in cells if c.task not in PIPELINE_TASKS]
        pipeline_cells = [c for c in cells if c.task in PIPELINE_TASKS]
        results = chain(run_cells(model_cells, backend, gen, config, concurrency),
                        retrieval_cells(pipeline_cells, config, backend,
                                        config.haystack.removeprefix("corpus:"), who)
                        if pipeline_cells else iter(()))
        for r in results:
            with session_scope(database_url()) as s:
                s.add(EvalCell(run_id=run_id, task=r.cell.task, length=r.cell.length,
                               depth=r.cell.depth, sample=r.cell.sample,
                               prompt_hash=r.prompt_hash, prompt_tokens=r.prompt_tokens,
                               cached_tokens=r.cached_tokens, response=_text(r.response),
                               answers=list(r.answers), metric=r.metric, score=r.score,
                               ttft_s=r.ttft_s, total_s=r.total_s, status=r.status,
                               error=_text(r.error)))
            finished += 1
            if progress:
                progress(finished, total)
    except BaseException:  # Ctrl-C, a crash: say so (resumable with the same run id)
        with session_scope(database_url()) as s:
            row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
            if row is not None:
                row.status = "interrupted"
        raise
    with session_scope(database_url()) as s:
        row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
        failed = s.scalars(select(EvalCell.id).where(EvalCell.run_id == run_id,
                                                     EvalCell.status == "failed")).all()
        row.status = "failed-cells" if failed else "done"
    return run_id


def _text(value: str | None) -> str | None:
    """NUL (a model can emit it) as U+FFFD: PostgreSQL text cannot hold it."""
    return value.replace("\x00", "\ufffd") if value else value


def cells_of(run_id: str, who: Who = None) -> list[CellScore]:
    with session_scope(database_url()) as s:
        _run_row(s, run_id, who)
        return [CellScore(c.task, c.length, c.depth, c.sample, c.score, c.ttft_s,
                          c.cached_tokens, c.total_s, c.prompt_tokens, c.status)
                for c in s.scalars(select(EvalCell).where(EvalCell.run_id == run_id)
                                   .order_by(EvalCell.task, EvalCell.length, EvalCell.depth,
                                             EvalCell.sample))]


def ruler_predictions(run_id: str, who: Who = None) -> list[Prediction]:
    """The run's RULER cells as RULER's evaluation reads its prediction files."""
    with session_scope(database_url()) as s:
        _run_row(s, run_id, who)
        return [Prediction(c.task, c.length, c.response or "", c.score)
                for c in s.scalars(select(EvalCell).where(EvalCell.run_id == run_id,
                                                          EvalCell.task.in_(RULER)))]


def longbench_rows(run_id: str, who: Who = None) -> dict[tuple[str, int],
                                                          list[tuple[str, str, float]]]:
    """The run's LongBench v2 cells as result.py reads them: per (task, length), each answered
    item's (difficulty, length group, score); failed cells and empty answers left out, as
    pred.py leaves out an item whose answer is empty."""
    out: dict[tuple[str, int], list[tuple[str, str, float]]] = {}
    with session_scope(database_url()) as s:
        _run_row(s, run_id, who)
        for c in s.scalars(select(EvalCell).where(EvalCell.run_id == run_id,
                                                  EvalCell.task.in_(LONGBENCH),
                                                  EvalCell.status == "done")
                           .order_by(EvalCell.task, EvalCell.length, EvalCell.sample)):
            if not c.response:
                continue
            _, difficulty, group = c.metric.removeprefix(RAW).split(":", 2)
            out.setdefault((c.task, c.length), []).append((difficulty, group, c.score or 0.0))
    return out


@dataclass(frozen=True)
class Rescored:
    cells: int
    changed: int
    before: float | None
    after: float | None


def rescore(run_id: str, metric: str | None = None, who: Who = None) -> Rescored:
    """Score the stored responses again (with `metric` all|part, or each cell's own) without
    calling the model; failed cells have no response to score and stay as they are. A
    published suite's cells (BABILong) keep their authors' rule whatever `metric` says."""
    if metric not in (None, "all", "part"):
        raise EngineError(f"unknown metric {metric!r}: all | part")
    with session_scope(database_url()) as s:
        _run_row(s, run_id, who)
        audit(s, who, "rescore", run_id, metric=metric)
        cells = s.scalars(select(EvalCell).where(EvalCell.run_id == run_id,
                                                 EvalCell.status == "done")).all()
        before = [c.score for c in cells if c.score is not None]
        changed = 0
        for c in cells:  # an override keeps each cell's thinking rule (raw: or not) and never
            own = c.metric.removeprefix(RAW)  # replaces a published suite's rule (its authors')
            if metric and own in ("all", "part"):
                c.metric = (RAW if c.metric.startswith(RAW) else "") + metric
            new = score_text(list(c.answers or []), c.metric, c.response or "")
            changed += new != c.score
            c.score = new
        after = [c.score for c in cells]
    return Rescored(len(cells), changed, _mean(before), _mean(after))


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def summary(run_id: str, who: Who = None) -> RunSummary:
    with session_scope(database_url()) as s:
        row = _run_row(s, run_id, who)
        cells = s.scalars(select(EvalCell).where(EvalCell.run_id == run_id)).all()
        scores = [c.score for c in cells if c.score is not None]
        return RunSummary(row.run_id, row.created_at.isoformat(timespec="seconds"), row.status,
                          len(cells), sum(c.status == "done" for c in cells),
                          sum(c.status == "failed" for c in cells),
                          sum(scores) / len(scores) if scores else None, dict(row.config),
                          dict(row.fingerprint))


def list_runs(who: Who = None) -> list[RunSummary]:
    """The runs `who` may see (their own; admins and the operator see all), newest first."""
    with session_scope(database_url()) as s:
        rows = s.execute(select(EvalRun.run_id, EvalRun.owner)
                         .order_by(EvalRun.created_at.desc())).all()
    return [summary(i, who) for i, owner in rows if can_change(who, owner)]

