"""`scoutlens eval compare`'s gate on stored runs: a significant regression fails it. Eval runs on
the embedded model: tests/integration/test_evals_run.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.database import session_scope
from app.models import EvalCell, EvalRun
from app.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


def _fake_run(run_id: str, scores: list[float], model: str = "m") -> None:
    with session_scope(get_settings().db_url) as s:
        s.add(EvalRun(run_id=run_id, config={}, fingerprint={"model": model}, status="done"))
        s.flush()
        for i, score in enumerate(scores):
            s.add(EvalCell(run_id=run_id, task="niah", length=1024 * (1 + i // 5),
                           depth=(i % 5) / 4, sample=0, prompt_hash="h", answers=["1"],
                           score=score))


def test_compare_gates_on_a_significant_regression():
    _fake_run("base", [1.0] * 10)
    _fake_run("same", [1.0] * 10)
    _fake_run("worse", [0.0] * 9 + [1.0], model="other")
    env = {**os.environ, "SCOUTLENS_HOME": str(get_settings().home_dir)}
    cli = [sys.executable, "-m", "app.cli", "eval", "compare"]
    ok = subprocess.run([*cli, "base", "same", "--fail-on-regression", "5", "--json"],
                        capture_output=True, text=True, cwd=ROOT, env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["mean_delta"] == 0
    bad = subprocess.run([*cli, "base", "worse", "--fail-on-regression", "5", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["worse"] == 9 and report["p_value"] < 0.05
    assert "different endpoints" in bad.stderr and "model" in bad.stderr
    missing = subprocess.run([*cli, "base", "nope"], capture_output=True, text=True, cwd=ROOT,
                             env=env)
    assert missing.returncode == 1 and "no such eval run" in missing.stderr
