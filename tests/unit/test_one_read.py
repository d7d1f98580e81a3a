"""A question reads its corpus's row once and checks access once (app.services.snapshot), in
every mode (a server checks once more before the question waits for the model); the CLI
resolves the corpus before it loads a model."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from fakes import ScriptedBackend
from helpers import make_facts_repo
from sqlalchemy import event
from typer.testing import CliRunner

from app.database import get_db
from app.services import access
from app.services.ask import AskInput, ask
from app.services.ingesting import ingest
from app.settings import get_settings

CORPUS_ROW = re.compile(r"^\s*SELECT\b.*\bFROM corpora\b", re.S | re.I)


@contextmanager
def counted(monkeypatch):
    """(reads of the corpora table, access checks of a corpus) made inside the block."""
    seen = {"rows": 0, "checks": 0}

    def statement(conn, cursor, sql, params, context, many):
        seen["rows"] += bool(CORPUS_ROW.match(sql))

    real = access.corpus_readable

    def check(who, row):
        seen["checks"] += 1
        return real(who, row)

    for module in ("app.services.access", "app.services.snapshot", "app.services.catalog"):
        monkeypatch.setattr(f"{module}.corpus_readable", check)
    engine = get_db(get_settings().db_url)
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)


@pytest.mark.parametrize("mode", ["full", "retrieval"])
def test_a_question_reads_its_corpus_row_once_and_checks_access_once(tmp_path, monkeypatch,
                                                                     mode):
    ingest([make_facts_repo(tmp_path / "repo")], "repo")
    with counted(monkeypatch) as seen:
        result = ask(AskInput("repo", "What is the vault code?", mode=mode), ScriptedBackend())
    assert result.mode == mode and result.sources
    assert seen == {"rows": 1, "checks": 1}, seen
    # a follow-up reads its conversation, not the corpus again
    with counted(monkeypatch) as seen:
        ask(AskInput("repo", "And the door?", mode=mode, continue_last=True), ScriptedBackend())
    assert seen == {"rows": 1, "checks": 1}, seen


def test_the_mcp_ask_tool_checks_before_it_waits_and_reads_at_its_turn(tmp_path,
                                                                       monkeypatch):
    """A server's ask checks the corpus before it waits for the model (a wrong name is told
    at once) and opens its snapshot at its turn, so the 40 asks that may wait hold no
    database connection: two reads, no more however the question is answered."""
    from app.mcp import schemas, tools
    from app.servers.runtime import Runtime

    ingest([make_facts_repo(tmp_path / "repo")], "repo")
    rt = Runtime(shared=True)
    rt.use(ScriptedBackend())
    args = schemas.AskArgs(corpus="repo", question="What is the vault code?")
    with counted(monkeypatch) as seen:
        out = tools.ask(args, rt, None, lambda *a: None)
    assert "7291" in out["answer"] and seen == {"rows": 2, "checks": 2}, seen


def test_the_cli_resolves_the_corpus_before_it_loads_a_model(monkeypatch):
    """A typo in a corpus name costs no model load: the one-line error comes first."""
    from app.cli import app

    loads = []
    monkeypatch.setattr("app.services.backends.make_backend",
                        lambda *a, **k: loads.append(a) or ScriptedBackend())
    result = CliRunner().invoke(app, ["ask", "no-such-corpus", "What is the vault code?"])
    assert result.exit_code != 0 and loads == []
    assert "no such corpus" in (result.output + str(result.exception))


def test_a_bad_question_is_refused_before_the_corpus_or_a_model(monkeypatch):
    from app.cli import app
    from app.services.ask import BadQuestion

    loads = []
    monkeypatch.setattr("app.services.backends.make_backend",
                        lambda *a, **k: loads.append(a) or ScriptedBackend())
    with counted(monkeypatch) as seen:
        result = CliRunner().invoke(app, ["ask", "no-such-corpus", "   "])
    assert result.exit_code != 0 and loads == [] and seen["rows"] == 0
    assert "the question is empty" in (result.output + str(result.exception))
    with pytest.raises(BadQuestion, match="unknown mode"):
        AskInput("repo", "What?", mode="fast")  # type: ignore[arg-type]
