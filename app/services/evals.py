"""Eval runs in the database: start or resume a run, store every cell as it finishes, report and
compare. A cell is written in its own transaction the moment it is scored, and cells are unique
per (run, task, length, depth, sample): an interrupted run resumes with the same run id, skips
what is done, retries what failed, and never duplicates or loses a finished cell."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select

from app.database import session_scope
from app.models import EvalCell, EvalRun
from app.settings import get_settings
from engine.types import Backend, EngineError
from evals.report import CellScore
from evals.runner import EvalConfig, check_window, plan_cells, run_cells
from evals.tasks import Generator


def _url() -> str:
    return get_settings().db_url


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
    return {"backend": backend.name, "model": backend.model, "window": backend.window}


def dry_run(config: EvalConfig, gen: Generator) -> dict:
    cells = plan_cells(config)
    return {"requests": len(cells), "prompt_tokens": sum(c.length for c in cells),
            "cells": [c.key for c in cells[:20]]}


def run(config: EvalConfig, backend: Backend, gen: Generator, run_id: str | None = None,
        progress: Callable[[int, int], None] | None = None) -> str:
    check_window(config, backend.window)
    run_id = run_id or uuid.uuid4().hex[:10]
    with session_scope(_url()) as s:
        row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
        if row is None:
            s.add(EvalRun(run_id=run_id, config=config.to_json(),
                          fingerprint=fingerprint(backend), status="running"))
        else:
            config = EvalConfig(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in row.config.items()})
            row.status = "running"
        done = {(c.task, c.length, round(c.depth, 4), c.sample) for c in s.scalars(
            select(EvalCell).where(EvalCell.run_id == run_id, EvalCell.status == "done"))}
        s.execute(delete(EvalCell).where(EvalCell.run_id == run_id,
                                         EvalCell.status == "failed"))  # retried now
    cells = [c for c in plan_cells(config) if c.key not in done]
    total, finished = len(done) + len(cells), len(done)
    if progress:
        progress(finished, total)
    concurrency = config.concurrency if backend.name != "embedded" else 1
    for r in run_cells(cells, backend, gen, config, concurrency):
        with session_scope(_url()) as s:
            s.add(EvalCell(run_id=run_id, task=r.cell.task, length=r.cell.length,
                           depth=r.cell.depth, sample=r.cell.sample, prompt_hash=r.prompt_hash,
                           prompt_tokens=r.prompt_tokens, cached_tokens=r.cached_tokens,
                           response=r.response, answers=list(r.answers), metric=r.metric,
                           score=r.score, ttft_s=r.ttft_s, total_s=r.total_s, status=r.status,
                           error=r.error))
        finished += 1
        if progress:
            progress(finished, total)
    with session_scope(_url()) as s:
        row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
        failed = s.scalars(select(EvalCell.id).where(EvalCell.run_id == run_id,
                                                     EvalCell.status == "failed")).all()
        row.status = "failed-cells" if failed else "done"
    return run_id


def cells_of(run_id: str) -> list[CellScore]:
    with session_scope(_url()) as s:
        if s.scalar(select(EvalRun).where(EvalRun.run_id == run_id)) is None:
            raise EngineError(f"no such eval run: {run_id} (scoutlens eval list)")
        return [CellScore(c.task, c.length, c.depth, c.sample, c.score, c.ttft_s,
                          c.cached_tokens)
                for c in s.scalars(select(EvalCell).where(EvalCell.run_id == run_id))]


def summary(run_id: str) -> RunSummary:
    with session_scope(_url()) as s:
        row = s.scalar(select(EvalRun).where(EvalRun.run_id == run_id))
        if row is None:
            raise EngineError(f"no such eval run: {run_id} (scoutlens eval list)")
        cells = s.scalars(select(EvalCell).where(EvalCell.run_id == run_id)).all()
        scores = [c.score for c in cells if c.score is not None]
        return RunSummary(row.run_id, row.created_at.isoformat(timespec="seconds"), row.status,
                          len(cells), sum(c.status == "done" for c in cells),
                          sum(c.status == "failed" for c in cells),
                          sum(scores) / len(scores) if scores else None, dict(row.config),
                          dict(row.fingerprint))


def list_runs() -> list[RunSummary]:
    with session_scope(_url()) as s:
        ids = s.scalars(select(EvalRun.run_id).order_by(EvalRun.created_at.desc())).all()
    return [summary(i) for i in ids]

