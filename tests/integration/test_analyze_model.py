"""`analyze` on the embedded model (the bundled 8K SmolLM2), end to end: a briefing of a corpus
larger than the window (map calls, a reduce, coverage 1.0, every call stored, the result
stored) and an extraction (one row per source; a value the model writes that its cited place
does not hold is flagged, never verified). The pipeline on scripted models:
tests/unit/test_analyze.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_facts_repo
from sqlalchemy import select

from app.database import session_scope
from app.models import AnalysisStep
from app.services.analysis import store
from app.services.analysis.extract import _fold
from app.services.analysis.run import analyze
from app.services.analysis.types import AnalyzeInput
from app.services.ingesting import ingest
from app.settings import database_url
from engine.embedded import EmbeddedBackend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backend(model_dir):
    return EmbeddedBackend(str(model_dir), kv_dir=None)


def _steps(analysis_id: str) -> list[tuple[int, int]]:
    with session_scope(database_url()) as session:
        return sorted((s.level, s.position) for s in session.scalars(
            select(AnalysisStep).where(AnalysisStep.analysis_id == analysis_id)))


def test_brief_of_a_corpus_over_the_window_reads_every_source(tmp_path, model_dir):
    repo = make_facts_repo(tmp_path / "big", filler_files=10)  # ~11K tokens: over 8K
    env = {**os.environ, "SCOUTLENS_MODEL": str(model_dir), "COLUMNS": "200"}
    run = [sys.executable, "-m", "app.cli"]
    subprocess.run([*run, "ingest", str(repo), "--corpus", "big", "--json"], env=env, cwd=ROOT,
                   capture_output=True, check=True, timeout=300)
    done = subprocess.run([*run, "analyze", "big", "brief", "--json", "--max-tokens", "48"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert data["coverage"] == 1.0 and data["sources_read"] == data["sources"] == 13
    assert data["cut"] == [] and data["tokens_read"] == data["tokens"]
    assert data["levels"] >= 1 and data["calls"] >= 3 and data["resumed"] == 0
    assert data["usage"]["prompt_tokens"] > data["tokens"]  # every token was read once at least
    assert data["text"].strip()
    # each citation is checked against the corpus; verified ones name a source read
    paths = {"NOTES.md", "src/config.py", "src/app.py"} | {
        f"logs/day{i:03d}.md" for i in range(10)}
    assert all(c["path"] in paths for c in data["citations"] if c["verified"])
    assert data["citations_verified"] == sum(c["verified"] for c in data["citations"])
    stored = store.analysis(data["analysis_id"])
    assert stored.status == "done" and stored.result == data
    steps = _steps(data["analysis_id"])
    maps = [p for level, p in steps if level == 0]
    assert len(steps) == data["calls"] and maps == list(range(len(maps))) and len(maps) >= 2
    assert max(level for level, _ in steps) == data["levels"]


def test_extract_rows_one_per_source_and_invented_cells_are_flagged(tmp_path, backend):
    src = tmp_path / "contracts"
    src.mkdir()
    for i, (party, amount) in enumerate([("Acme Ltd", "1200 EUR"), ("Globex AG", "880 EUR"),
                                         ("Initech SA", "4300 EUR")]):
        (src / f"c{i}.txt").write_text(f"Supply contract {i}\nParty: {party}\n"
                                       f"Amount: {amount}\nSigned in Lisbon.\n")
    ingest([src], "contracts")
    # no document names who signed it: whatever the model writes there cannot check out
    asked = AnalyzeInput("contracts", "extract", ("party", "amount", "signed by"),
                         max_tokens=200)
    result = analyze(asked, backend)
    data = result.to_json()
    assert data["coverage"] == 1.0 and data["columns"] == ["party", "amount", "signed by"]
    assert [r["source"] for r in data["rows"]] == ["c0.txt", "c1.txt", "c2.txt"]
    texts = {f"c{i}.txt": (src / f"c{i}.txt").read_text() for i in range(3)}
    for row in data["rows"]:
        for cell in row["cells"].values():
            assert set(cell) >= {"value", "cite", "found", "verified", "why"}
            if not cell["found"]:
                assert cell["value"] is None and not cell["verified"]
            elif cell["verified"]:  # only a value its own source holds checks out
                assert _fold(cell["value"]) in _fold(texts[row["source"]])
            else:
                assert cell["why"]
    assert store.analysis(data["analysis_id"]).status == "done"

