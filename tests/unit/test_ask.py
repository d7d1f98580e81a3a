"""Ask without a model (ScriptedBackend, the stand-in OpenAI server): the corpus version an answer
is stored with, a stored corpus against a folder of that name, history, the CLI's habits. On
the embedded model: tests/integration/test_ask.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import ScriptedBackend
from helpers import make_facts_repo

from app.services.ask import AskInput, ask
from app.services.history import history
from ingest.types import IngestError

ROOT = Path(__file__).resolve().parents[2]



def resolve_corpus(target: str, **kw) -> str:
    """The corpus a question's target resolves to (app.services.targets.open_target)."""
    from app.services.targets import open_target

    with open_target(target, **kw) as snap:
        return snap.name

def _version(name: str) -> str:
    from app.services.catalog import show_corpus

    return show_corpus(name)[0].version_hash


def _stored_versions() -> list[str]:
    from sqlalchemy import select

    from app.database import session_scope
    from app.models import Question
    from app.settings import get_settings

    with session_scope(get_settings().db_url) as s:
        return list(s.scalars(select(Question.corpus_version).order_by(Question.id)))


@pytest.mark.parametrize("mode", ["full", "retrieval"])
def test_an_ingest_during_the_answer_does_not_relabel_it(tmp_path, mode):
    """The stored answer carries the version its context was read from, not the one an ingest
    landing while the model was generating left behind."""
    from app.services.ingesting import ingest

    repo = make_facts_repo(tmp_path / "repo")
    ingest([repo], "repo")
    before = _version("repo")

    def change():
        (repo / "NOTES.md").write_text("# Notes\n\nThe vault code is now 1111.\n")
        ingest([repo], "repo")

    r = ask(AskInput(str(repo), "What is the vault code?", mode=mode),
            ScriptedBackend(during=change))
    after = _version("repo")
    assert after != before
    assert _stored_versions() == [before]
    assert r.corpus_version == before == history("repo")[0].corpus_version


@pytest.mark.parametrize("mode", ["full", "retrieval"])
def test_an_ingest_between_the_corpus_row_and_its_text_is_the_version_read(tmp_path,
                                                                           monkeypatch, mode):
    """A question reads the corpus's row, then its text (or index and segments): an ingest
    landing in between changes neither what it reads nor the version stored with it (one
    snapshot, app.services.snapshot)."""
    from app.services import context as service
    from app.services.ingesting import ingest

    repo = make_facts_repo(tmp_path / "repo")
    ingest([repo], "repo")
    before = _version("repo")
    read = service.documents if mode == "full" else service.rank
    landed = []

    def late(snap, *args, **kwargs):
        if not landed:
            (repo / "NOTES.md").write_text("# Notes\n\nThe vault code is now 1111.\n")
            ingest([repo], "repo")
            landed.append(True)
        return read(snap, *args, **kwargs)

    monkeypatch.setattr(service, "documents" if mode == "full" else "rank", late)
    backend = ScriptedBackend()
    monkeypatch.chdir(tmp_path)
    r = ask(AskInput("repo", "What is the vault code?", mode=mode), backend)
    assert landed and _version("repo") != before
    assert "1111" not in backend.requests[0].prefix and "7291" in backend.requests[0].prefix
    assert _stored_versions() == [before]
    assert r.corpus_version == before == history("repo")[0].corpus_version


def test_a_stored_corpus_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """`ask small` with a folder ./small: the stored corpus, said so; the folder is neither
    merged in nor, when empty, a failure."""
    from app.services.catalog import show_corpus
    from app.services.ingesting import ingest

    ingest([make_facts_repo(tmp_path / "src")], "small")
    files = [f.path for f in show_corpus("small")[1]]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").mkdir()
    notes: list[str] = []
    assert resolve_corpus("small", note=notes.append) == "small"  # empty ./small: no failure
    (tmp_path / "small" / "stray.txt").write_text("not meant for the corpus\n")
    r = ask(AskInput("small", "What is the vault code?"), ScriptedBackend(), note=notes.append)
    assert r.corpus == "small" and [f.path for f in show_corpus("small")[1]] == files
    assert notes and all("stored corpus 'small'" in n and "--path" in n for n in notes)
    # a path is a path when it looks like one, or with --path: then it is ingested, said so
    notes.clear()
    assert resolve_corpus("./small", note=notes.append) == "small"
    assert "stray.txt" in [f.path for f in show_corpus("small")[1]]
    assert notes == ["ingesting small into corpus 'small'"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.md").write_text("other text\n")
    with pytest.raises(IngestError, match=r"no such corpus or path: other .*\./other exists"):
        resolve_corpus("other")
    assert resolve_corpus("other", as_path=True) == "other"
    with pytest.raises(IngestError, match="no such file or folder"):
        resolve_corpus("./missing")


def test_cli_ask_path_ingests_a_bare_folder_name(tmp_path):
    from fakes import FakeOpenAI

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("The vault code is 7291.\n")
    env = {**os.environ, "COLUMNS": "200", "SCOUTLENS_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT)}
    server = FakeOpenAI().start()  # a server that answers (a closed port costs the retries)
    try:
        cmd = [sys.executable, "-m", "app.cli", "ask", "notes", "q?", "--endpoint", server.url]
        bare = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=120)
        assert bare.returncode == 1 and "--path" in bare.stderr
        assert "Traceback" not in bare.stderr and server.completions == []
        by_path = subprocess.run(cmd + ["--path"], capture_output=True, text=True,
                                 cwd=tmp_path, env=env, timeout=120)
        assert "ingesting notes into corpus 'notes'" in by_path.stderr, by_path.stderr
        assert by_path.returncode == 0 and "Traceback" not in by_path.stderr, by_path.stderr
        assert "The answer is 42." in by_path.stdout
        assert "The vault code is 7291." in server.completions[-1].body["messages"][-1]["content"]
    finally:
        server.close()


def test_history_shows_incomplete_answers_and_escapes_control_characters(tmp_path):
    from app.services.ask import AskResult, _store
    from engine.types import Completion, Usage

    hostile = "hi\x1b[31mRED\x1b[0m\rOVER\x07\x9b2J\u202eevil [bold]x[/bold]"
    for finish in ("stop", "incomplete"):
        comp = Completion(hostile, Usage(1, 0, 1), finish_reason=finish, model="m",
                          backend="openai")
        _store(AskResult(hostile, "full", [], comp, "c", 0, 0, finish, 1), hostile, 0)
    env = {**os.environ, "COLUMNS": "250"}
    shown = subprocess.run([sys.executable, "-m", "app.cli", "history"], capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout
    for raw in ("\x1b", "\r", "\x07", "\x9b", "\u202e"):
        assert raw not in table
    assert "\\x1b[31mRED" in table and "\\r" in table and "[bold]x" in table
    assert "incomplete" in table and "stop" in table
    as_json = subprocess.run([sys.executable, "-m", "app.cli", "history", "--json"],
                             capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    for raw in ("\x1b", "\r", "\x9b", "\u202e"):
        assert raw not in as_json.stdout
    rows = json.loads(as_json.stdout)
    assert {(r["finish_reason"], r["incomplete"]) for r in rows} == {("stop", False),
                                                                   ("incomplete", True)}
    assert all(r["question"] == hostile == r["answer"] for r in rows)


def test_the_cli_reads_the_question_from_stdin_and_follows_up_like_llm(tmp_path):
    """llm's habits: the question piped in (or `-`), `-c` continues the last conversation,
    `--cid ID` a given one, `-e`/`-m` choose the server and model."""
    import json
    import os
    import subprocess
    import sys

    from fakes import FakeOpenAI

    from app.services.ingesting import ingest

    (tmp_path / "notes.md").write_text("# Notes\n\nThe vault code is 7291.\n")
    ingest([tmp_path / "notes.md"], "notes")
    env = {**os.environ, "COLUMNS": "200"}

    def cli(*args: str, stdin: str = "") -> dict:
        proc = subprocess.run([sys.executable, "-m", "app.cli", "ask", *args], input=stdin,
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    server = FakeOpenAI().start()
    try:
        first = cli("notes", "-e", server.url, "-m", "fake-model", "--json",
                    stdin="What is the vault code?\n")
        asked = server.completions[-1].body["messages"][-1]["content"]
        assert "What is the vault code?" in asked
        follow = cli("notes", "-", "-c", "-e", server.url, "--json", stdin="And why?")
        assert follow["conversation"] == first["conversation"] and follow["turn"] == 2
        assert "Earlier question: What is the vault code?" in \
            server.completions[-1].body["messages"][-1]["content"]
        again = cli("notes", "Once more?", "--cid", first["conversation"], "-e", server.url,
                    "--json")
        assert again["conversation"] == first["conversation"] and again["turn"] == 3
        fresh = cli("notes", "A new topic?", "-e", server.url, "--json")
        assert fresh["conversation"] != first["conversation"] and fresh["turn"] == 1
        # an empty question is refused, the server never asked (against the server: the
        # default backend would load the embedded model first, and unit tests take no model)
        sent = len(server.completions)
        empty = subprocess.run([sys.executable, "-m", "app.cli", "ask", "notes", "-e",
                                server.url], input="", capture_output=True, text=True,
                               timeout=120, env=env)
        assert empty.returncode == 1 and "Traceback" not in empty.stderr
        assert "the question is empty" in empty.stderr
        assert len(server.completions) == sent
    finally:
        server.close()
