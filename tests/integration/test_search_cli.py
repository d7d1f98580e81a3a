"""Retrieval as teams and users run it: two app homes over one PostgreSQL answer from the same
index version (the second builds it from the database on first use), and the command line
(`search`, `ask --dry-run`) with the bundled model's tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import make_site_corpus as _corpus

from app.services.ingesting import ingest
from app.services.search import search
from app.settings import get_settings


def test_two_homes_over_one_postgresql_answer_from_the_same_index(tmp_path, pg_url,
                                                                    monkeypatch):
    ingest([_corpus(tmp_path / "site", packages=8)], "site")
    question = "In which file is the function get_best_fit defined?"
    first = search("site", question, k=5)
    monkeypatch.setenv("SCOUTLENS_HOME", str(tmp_path / "replica"))  # another machine
    get_settings.cache_clear()
    second = search("site", question, k=5)
    assert "missing: rebuilt it from the database" in second.notes[0]
    assert [h.segment.id for h in second.hits] == [h.segment.id for h in first.hits]
    assert second.hits[0].segment.path.endswith("image_processing.py")
    assert search("site", question, k=5).notes == []  # built once, then loaded


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_search_and_dry_run_from_the_command_line(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("SCOUTLENS_MODEL", str(model_dir))  # the tokenizer; no weights loaded
    root = _corpus(tmp_path / "site", packages=6)
    assert _cli("ingest", "site", str(root)).returncode == 0
    found = _cli("search", "site", "get_best_fit", "-k", "3", "--json")
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["hits"][0]
    assert top["path"].endswith("image_processing.py") and top["lines"][0] >= 1
    assert "symbol" in top["signals"] and top["score"] > 0
    shown = _cli("search", "site", "get_best_fit")
    assert "image_processing.py" in shown.stdout and "symbol #1" in shown.stdout
    dry = _cli("ask", "site", "Where is get_best_fit defined?", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["mode"] in ("full", "retrieval") and plan["prompt_tokens"] > 0
    assert "def get_best_fit(" in plan["context"] and plan["sources"]
    assert json.loads(_cli("history", "--json").stdout) == []  # nothing stored
    gone = _cli("search", "nope", "x")
    assert gone.returncode == 1 and "no such corpus" in gone.stderr
    assert "Traceback" not in gone.stderr
