"""`eval run --task retrieval`: needles planted in a copy of a stored corpus, scored by whether
the context ask would build holds them; the copies are removed; nothing reaches a model."""

from __future__ import annotations

import pytest
from fakes import ScriptedBackend
from helpers import make_site_corpus
from sqlalchemy import select

from app.database import session_scope
from app.models import EvalCell
from app.services import eval_runs
from app.services.catalog import list_corpora
from app.services.ingesting import ingest
from app.settings import get_settings
from engine.types import EngineError
from evals.runner import EvalConfig


def test_retrieval_recall_by_depth_and_corpus_size(tmp_path):
    ingest([make_site_corpus(tmp_path / "site", packages=30)], "site")
    backend = ScriptedBackend(window=8192)  # a character a token: the corpus is far larger
    config = EvalConfig(tasks=("retrieval",), lengths=(500, 60_000), depths=(0.0, 0.5, 1.0),
                        haystack="site", max_tokens=64)
    gen, config = eval_runs.generator_for(config, backend)
    run_id = eval_runs.run(config, backend, gen, "r1")
    summary = eval_runs.summary(run_id)
    assert (summary.cells, summary.done, summary.failed) == (6, 6, 0)
    cells = eval_runs.cells_of(run_id)
    assert {c.length for c in cells} == {500, 60_000}
    with session_scope(get_settings().db_url) as s:
        responses = {(c.length, c.depth): c.response for c in s.scalars(select(EvalCell))}
    assert all(c.score == 1.0 for c in cells), responses
    assert responses[(500, 0.5)].startswith("full:")  # it fits: all of it goes in
    assert all(responses[(60_000, d)].startswith("retrieval:") for d in (0.0, 0.5, 1.0))
    assert backend.requests == []  # the model was never asked
    assert [c.name for c in list_corpora()] == ["site"]  # the scratch copies are gone


def test_the_retrieval_task_needs_a_stored_corpus():
    backend = ScriptedBackend()
    config = EvalConfig(tasks=("retrieval",), lengths=(1000,), haystack="prose")
    gen, config = eval_runs.generator_for(config, backend)
    with pytest.raises(EngineError, match="--haystack CORPUS"):
        eval_runs.run(config, backend, gen, "r2")
