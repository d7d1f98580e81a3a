"""Dense retrieval as users and teams run it: `SCOUTLENS_DENSE=1 scoutlens ingest`, then
`search --json` and `ask --dry-run --json` from the command line with the bundled model's
tokenizer (a paraphrase reaches the context through `dense`), turning dense on after ingest
(`--build-vectors`), and a second home over one PostgreSQL rebuilding index and vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from app.services.ingesting import ingest
from app.services.search import search
from app.settings import get_settings

NOTES = {
    "money.md": "# Payments\n\nInvoices are approved by the finance team within five working "
                "days of receipt.\n",
    "weather.md": "# Weather\n\nThe weather was mild and grey all week.\n",
    "cook.py": 'def boil_pasta(water_litres):\n    """Bring salted water to a rolling boil and '
               'cook the noodles until tender."""\n    return water_litres * 2\n',
}
PARAPHRASE = "who signs off on bills to be paid"


def _notes(root):
    root.mkdir()
    for name, text in NOTES.items():
        (root / name).write_text(text)
    return root


def _cli(*args: str, dense: str = "1") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", "SCOUTLENS_DENSE": dense})


def test_dense_from_the_command_line(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("SCOUTLENS_MODEL", str(model_dir))  # the tokenizer; no weights loaded
    assert _cli("ingest", "notes", str(_notes(tmp_path / "notes"))).returncode == 0
    found = _cli("search", "notes", PARAPHRASE, "--json")
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert data["hits"][0]["path"] == "money.md" and data["hits"][0]["signals"] == {"dense": 1}
    assert data["notes"] == [] and "Loading weights" not in found.stderr
    shown = _cli("search", "notes", PARAPHRASE)
    assert "money.md" in shown.stdout and "dense #1" in shown.stdout
    dry = _cli("ask", "notes", PARAPHRASE + "?", "--mode", "retrieval", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [s["path"] for s in plan["sources"]][0] == "money.md"
    assert "finance team" in plan["context"]
    off = _cli("search", "notes", PARAPHRASE, "--json", dense="0")
    assert json.loads(off.stdout)["hits"] == []


def test_dense_turned_on_after_ingest_builds_vectors_on_request(tmp_path):
    ingest([_notes(tmp_path / "notes")], "notes")  # dense off: no vectors
    built = _cli("search", "notes", PARAPHRASE, "--json", "--build-vectors")
    assert built.returncode == 0, built.stderr
    data = json.loads(built.stdout)
    assert "embedding 3 segments" in data["notes"][0]
    assert data["hits"][0]["path"] == "money.md"
    again = json.loads(_cli("search", "notes", PARAPHRASE, "--json").stdout)
    assert again["notes"] == [] and again["hits"][0]["signals"] == {"dense": 1}


def test_a_second_home_over_one_postgresql_rebuilds_index_and_vectors(tmp_path, pg_url,
                                                                       monkeypatch):
    monkeypatch.setenv("SCOUTLENS_DENSE", "1")
    get_settings.cache_clear()
    ingest([_notes(tmp_path / "notes")], "notes")
    first = search("notes", PARAPHRASE, k=3)
    monkeypatch.setenv("SCOUTLENS_HOME", str(tmp_path / "replica"))  # another machine
    get_settings.cache_clear()
    second = search("notes", PARAPHRASE, k=3)
    assert "missing: rebuilt it from the database" in second.notes[0]
    assert "embedding 3 segments" in second.notes[1]
    assert [h.segment.id for h in second.hits] == [h.segment.id for h in first.hits]
    assert second.hits[0].signals == {"dense": 1}
    assert search("notes", PARAPHRASE, k=3).notes == []
