"""Eval runs end to end on the embedded model: stored cells, reports, resume. Compare's gate:
tests/unit/test_evals_compare.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.database import session_scope
from app.models import EvalCell, EvalRun
from app.services import eval_runs
from app.settings import get_settings
from engine.embedded import EmbeddedBackend
from engine.openai_backend import OpenAIBackend
from engine.types import EngineError
from evals.runner import EvalConfig
from evals.tasks import Generator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backend(model_dir):
    return EmbeddedBackend(str(model_dir), kv_dir=None)


def gen_for(backend) -> Generator:
    tok = backend.tokenizer()
    return Generator(tok.encode, tok.decode)


def test_niah_on_the_embedded_model_stores_every_cell(backend, tmp_path):
    config = EvalConfig(("niah",), (1024, 2048, 4096), (0.0, 0.5, 1.0), samples=1)
    run_id = eval_runs.run(config, backend, gen_for(backend), "t1")
    s = eval_runs.summary(run_id)
    assert (s.cells, s.done, s.failed, s.status) == (9, 9, 0, "done")
    cells = eval_runs.cells_of(run_id)
    assert {(c.length, c.depth) for c in cells} == {(n, d) for n in (1024, 2048, 4096)
                                                     for d in (0.0, 0.5, 1.0)}
    assert all(abs(c.prompt_tokens - c.length) < 80 for c in cells)  # + the chat template
    assert s.mean is not None and s.mean >= 0.5  # SmolLM2 finds most needles at 1-4K
    assert any(c.cached_tokens > 0 for c in cells)  # depths of one length share a prefix
    out = subprocess.run([sys.executable, "-m", "app.cli", "eval", "report", run_id, "--json"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "SCOUTLENS_HOME": str(get_settings().home_dir)})
    report = json.loads(out.stdout)
    assert len(report["cells"]) == 9 and report["effective_length"] in (0, 1024, 2048, 4096)
    assert all({"length", "depth", "score"} <= set(c) for c in report["cells"])
    html = subprocess.run([sys.executable, "-m", "app.cli", "eval", "report", run_id, "--out",
                           str(tmp_path / "rep")], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "SCOUTLENS_HOME": str(get_settings().home_dir)})
    assert html.returncode == 0, html.stderr
    assert (tmp_path / "rep" / "niah.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64" in (tmp_path / "rep" / "report.html").read_text()


def test_lengths_over_the_window_are_refused_before_sending(backend):
    config = EvalConfig(("niah",), (4096, 16384))
    with pytest.raises(EngineError, match="8,192"):
        eval_runs.run(config, backend, gen_for(backend), "too-long")
    with session_scope(get_settings().db_url) as s:
        assert s.query(EvalRun).count() == 0


def test_an_endpoint_down_marks_cells_failed_and_a_rerun_retries_them(backend):
    down = OpenAIBackend("http://127.0.0.1:9/v1", model="m", max_retries=0)
    down._models = [{"id": "m", "max_model_len": 8192}]  # no server to ask: stated here
    config = EvalConfig(("niah",), (1024,), (0.5,), samples=2)
    run_id = eval_runs.run(config, down, gen_for(backend), "down")
    s = eval_runs.summary(run_id)
    assert (s.failed, s.done, s.status) == (2, 0, "failed-cells")
    eval_runs.run(config, backend, gen_for(backend), "down")  # resumed where it failed
    s = eval_runs.summary(run_id)
    assert (s.cells, s.failed, s.done, s.status) == (2, 0, 2, "done")


def test_a_killed_run_resumes_without_duplicates(tmp_path, model_dir):
    home = get_settings().home_dir
    env = {**os.environ, "SCOUTLENS_HOME": str(home), "SCOUTLENS_MODEL": str(model_dir)}
    cmd = [sys.executable, "-m", "app.cli", "eval", "run", "--lengths", "1k,2k", "--depths",
           "0,50,100", "--run-id", "kill-me"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    db = home / "scoutlens.db"
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM eval_cells").fetchone()[0] >= 2:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = eval_runs.summary("kill-me").cells
    assert 2 <= before < 6
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with session_scope(get_settings().db_url) as s:
        rows = s.query(EvalCell).filter(EvalCell.run_id == "kill-me").all()
        keys = [(c.task, c.length, c.depth, c.sample) for c in rows]
    assert len(keys) == 6 == len(set(keys))


def test_a_length_or_depth_given_twice_is_one_cell(backend):
    config = EvalConfig(("niah", "niah"), (1024, 1024), (0.5, 0.5), samples=1)
    run_id = eval_runs.run(config, backend, gen_for(backend))
    cells = eval_runs.cells_of(run_id)
    assert [(c.task, c.length, c.depth) for c in cells] == [("niah", 1024, 0.5)]


def test_a_crash_mid_run_marks_it_interrupted_and_it_resumes(backend):
    class CrashesOnSecondCell:  # the real model, with a fault injected on the second request
        def __init__(self, inner):
            self._inner, self.calls = inner, 0

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def stream(self, request):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("worker died")
            return self._inner.stream(request)

    config = EvalConfig(("niah",), (1024,), (0.0, 1.0), samples=1)
    with pytest.raises(RuntimeError, match="worker died"):
        eval_runs.run(config, CrashesOnSecondCell(backend), gen_for(backend), run_id="crashy")
    s = eval_runs.summary("crashy")
    assert s.status == "interrupted" and s.done == 1
    eval_runs.run(config, backend, gen_for(backend), run_id="crashy")
    s = eval_runs.summary("crashy")
    assert s.status == "done" and s.done == 2 and s.cells == 2
