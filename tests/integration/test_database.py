"""The database layer on SQLite and PostgreSQL: migrations keep a previous release's rows, data
that PostgreSQL refuses is stored the same way on both, one writer per corpus. Its errors
without a server: tests/unit/test_database.py."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from sqlalchemy import MetaData, create_engine, func, insert, select

from app.database import (
    HEAD_REVISION,
    current_revision,
    get_db,
    session_scope,
    upgrade,
)
from app.models import Question, Source, StoredSegment
from app.services import catalog, ingesting, portable, snapshot
from app.services.history import history
from app.settings import get_settings

PREVIOUS_RELEASE = "0002"  # the schema of the release before this one


def _fill_previous_release(url: str) -> dict[str, int]:
    """A database as the previous release left it: its schema, and rows in every table."""
    engine = create_engine(url)
    try:
        upgrade(engine, PREVIOUS_RELEASE)
        assert current_revision(engine) == PREVIOUS_RELEASE
        meta = MetaData()
        meta.reflect(engine)
        assert "eval_runs" not in meta.tables  # really the older schema
        t = meta.tables
        now = datetime(2026, 11, 1, 12, 0, 0)
        with engine.begin() as conn:
            for c in range(2):
                conn.execute(insert(t["corpora"]).values(
                    id=c + 1, name=f"old-{c}", created_at=now, updated_at=now,
                    version_hash=f"v{c}", tokenizer="cl100k"))
                for i in range(3):
                    sid = c * 10 + i + 1
                    conn.execute(insert(t["sources"]).values(
                        id=sid, corpus_id=c + 1, path=f"src/f{i}.py", root="/r", kind="code",
                        language="python", sha256="0" * 64, bytes=10, tokens=4, status="ok",
                        skip_reason=None, position=i + 1, flags=["x"], meta={"é": "ü"}))
                    conn.execute(insert(t["segments"]).values(
                        source_id=sid, order=0, span_kind="lines", start=1, end=2, tokens=4,
                        text=f"def f{i}():\n    return 'ünïcode {c}'\n"))
                    conn.execute(insert(t["symbols"]).values(
                        source_id=sid, name=f"f{i}", kind="function", start_line=1, end_line=2,
                        signature=f"def f{i}():", parent=None))
            for q in range(4):
                conn.execute(insert(t["questions"]).values(
                    created_at=now, corpus_id=1, corpus_name="old-0", corpus_version="v0",
                    conversation="conv1", turn=q + 1, question=f"question {q}?",
                    answer=f"answer {q}", mode="full", in_context_tokens=12, corpus_tokens=12,
                    sources=[{"id": "S1"}], backend="openai", model="scout",
                    usage={"prompt_tokens": 12}, timings={"total_s": 0.5},
                    finish_reason="stop"))
        with engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(t[name])).scalar()
                    for name in ("corpora", "sources", "segments", "symbols", "questions")}
    finally:
        engine.dispose()


def test_upgrade_from_the_previous_release_keeps_every_row(db_url):
    before = _fill_previous_release(db_url)
    assert before == {"corpora": 2, "sources": 6, "segments": 6, "symbols": 6, "questions": 4}
    engine = get_db(db_url)  # what the app does on first use: upgrade to head
    assert current_revision(engine) == HEAD_REVISION
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        after = {name: conn.execute(select(func.count()).select_from(meta.tables[name])).scalar()
                 for name in before}
    assert after == before
    # and the services read the old rows as they were written
    assert [c.name for c in catalog.list_corpora()] == ["old-0", "old-1"]
    _, docs = snapshot.load_documents("old-1", symbols=True)
    assert [d.path for d in docs] == ["src/f0.py", "src/f1.py", "src/f2.py"]
    assert docs[2].text == "def f2():\n    return 'ünïcode 1'\n"
    assert docs[0].metadata == {"é": "ü"} and docs[0].symbols[0].name == "f0"
    rows = history("old-0")
    assert sorted(r.question for r in rows) == [f"question {q}?" for q in range(4)]
    assert rows[0].usage == {"prompt_tokens": 12}


def test_what_postgresql_refuses_is_stored_alike_on_both(tmp_path, db_url):
    folder = tmp_path / "in"
    folder.mkdir()
    # a NUL past the 8 KB binary sniff, a 600-character function name, a 2,100-character path
    (folder / "a.txt").write_bytes(b"hello world\n" * 1000 + b"after\x00nul\n")
    (folder / "b.py").write_text(f"def {'x' * 600}():\n    return 1\n")
    deep = folder.joinpath(*["d" * 70] * 30)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_text("deep\n")
    report = ingesting.ingest([folder], "c")
    status = {f.path: (f.status, f.reason) for f in report.files}
    assert status["a.txt"][0] == status["b.py"][0] == "added"
    long_path = next(p for p in status if p.endswith("f.txt"))
    assert status[long_path] == ("error", "path longer than 2,000 characters: not stored")
    _, docs = snapshot.load_documents("c", symbols=True)
    assert [d.path for d in docs] == ["a.txt", "b.py"]
    a = docs[0]
    assert "after\ufffdnul" in a.text and "\x00" not in a.text
    assert a.tokens == sum(s.tokens for s in a.segments) == report.total_tokens - docs[1].tokens
    assert docs[1].symbols[0].name == "x" * 500


def test_concurrent_ingests_of_one_corpus_both_apply(tmp_path, db_url, monkeypatch):
    """Two first ingests of one new corpus, released into their write transactions together:
    the second waits for the first, then applies its own files on top (no unique-constraint
    crash on the corpus or its sources, nothing lost, nothing twice)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        for i in range(40):
            (folder / f"{folder.name}{i}.txt").write_text(f"file {i} of {folder.name}\n" * 50)
    (tmp_path / "warm.txt").write_text("warm up the schema and the tokenizer\n")
    ingesting.ingest([tmp_path / "warm.txt"], "warm")
    gate = threading.Barrier(2, timeout=60)
    real = portable.portable

    def together(result, tok):  # both threads have read the database, neither has written
        out = real(result, tok)
        gate.wait()
        return out

    monkeypatch.setattr(ingesting, "portable", together)
    errors: list[BaseException] = []

    def run(folder: Path) -> None:
        try:
            ingesting.ingest([folder], "same")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    _, docs = snapshot.load_documents("same")
    assert sorted(d.path for d in docs) == sorted(
        [f"a{i}.txt" for i in range(40)] + [f"b{i}.txt" for i in range(40)])
    with session_scope(get_settings().db_url) as s:
        assert s.scalar(select(func.count()).select_from(Source)) == 81
        assert s.scalar(select(func.count()).select_from(StoredSegment)) == 81


def test_questions_store_nul_as_replacement(db_url):
    from app.services.ask import AskResult, _store
    from engine.types import Completion, Timings, Usage

    comp = Completion("an\x00swer", Usage(1, 0, 1), Timings(), "stop", "m", "openai")
    _store(AskResult("an\x00swer", "full", [], comp, "none", 0, 0, "c1", 1), "que\x00stion?", 0)
    with session_scope(get_settings().db_url) as s:
        q = s.scalars(select(Question)).one()
        assert (q.question, q.answer) == ("que\ufffdstion?", "an\ufffdswer")


def test_upgrade_from_the_release_before_sign_in_gives_rows_to_admin(db_url):
    """A database as the release before sign-in left it (0004, with rows): after the upgrade
    its corpora, questions and eval runs belong to `admin` and stay private (admins and the
    operator see them, a signed-in person does not) until shared."""
    from app.services.access import Principal
    from app.services.catalog import share_corpus
    from app.services.eval_runs import list_runs

    engine = create_engine(db_url)
    try:
        upgrade(engine, "0004")
        meta = MetaData()
        meta.reflect(engine)
        assert "owner" not in meta.tables["corpora"].c  # really the older schema
        t = meta.tables
        now = datetime(2026, 12, 1, 9, 0, 0)
        with engine.begin() as conn:
            conn.execute(insert(t["corpora"]).values(
                id=1, name="before", created_at=now, updated_at=now, version_hash="v",
                tokenizer="cl100k"))
            conn.execute(insert(t["questions"]).values(
                created_at=now, corpus_id=1, corpus_name="before", corpus_version="v",
                conversation="c1", turn=1, question="old question?", answer="old answer",
                mode="full", in_context_tokens=1, corpus_tokens=1, sources=[], backend="openai",
                model="m", usage={}, timings={}, finish_reason="stop", context=None))
            conn.execute(insert(t["eval_runs"]).values(
                run_id="old-run", created_at=now, config={}, fingerprint={}, status="done"))
    finally:
        engine.dispose()
    get_db(db_url)  # first use upgrades to head
    alice = Principal("alice", frozenset({"staff"}))
    admin = Principal("root", frozenset({"admins"}), admin=True)
    row = catalog.list_corpora()[0]
    assert (row.name, row.owner, row.visibility) == ("before", "admin", "private")
    assert catalog.list_corpora(who=alice) == [] and history(who=alice) == []
    assert [c.name for c in catalog.list_corpora(who=admin)] == ["before"]
    assert [r.question for r in history()] == ["old question?"]
    assert [r.run_id for r in list_runs(who=admin)] == ["old-run"] and list_runs(who=alice) == []
    share_corpus("before", "everyone")
    assert [c.name for c in catalog.list_corpora(who=alice)] == ["before"]
