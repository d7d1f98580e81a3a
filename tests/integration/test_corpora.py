"""Ingesting into the database: incremental, transactional, pruned; list/show/rm. Every test runs
on SQLite and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_pdf, make_repo
from sqlalchemy import func, select

from app.database import HEAD_REVISION, MIGRATIONS, get_db, session_scope
from app.models import Corpus, Source, StoredSegment, Symbol
from app.services import catalog, ingesting, snapshot
from app.settings import get_settings
from ingest.types import IngestError

pytestmark = pytest.mark.usefixtures("db_url")


def _counts() -> dict[str, int]:
    with session_scope(get_settings().db_url) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Corpus, Source, StoredSegment, Symbol)}


def test_migration_head_matches_newest_file():
    files = sorted(p.stem for p in (MIGRATIONS / "versions").glob("*.py"))
    assert files[-1].split("_")[0] == HEAD_REVISION


def test_database_created_on_first_use_with_alembic(scoutlens_home, db_url):
    engine = get_db(get_settings().db_url)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    assert version == HEAD_REVISION
    assert (scoutlens_home / "scoutlens.db").exists() == db_url.startswith("sqlite")


def test_ingest_repo_report_segments_symbols(tmp_path):
    repo = make_repo(tmp_path)
    report = ingesting.ingest([repo], "repo")
    status = {f.path: f.status for f in report.files}
    # git's view: tracked + untracked-not-ignored; ignored files never show up
    assert status["src/app.py"] == "added"
    assert status["NOTES.txt"] == "added"
    assert "debug.log" not in status and "build/out.txt" not in status
    assert "src/pkg/secret.env" not in status
    # noise is reported with its rule
    reasons = {f.path: f.reason for f in report.files if f.status == "skipped"}
    assert reasons["logo.ico"].startswith("binary")
    assert reasons["package-lock.json"].startswith("lockfile")
    assert reasons["static.min.js"].startswith("generated")
    assert report.total_tokens == sum(f.tokens for f in report.files if f.status == "added")
    assert report.to_json()["tree"]["src/"] > 0

    _, docs = snapshot.load_documents("repo", symbols=True)
    app = next(d for d in docs if d.path == "src/app.py")
    assert app.text == (repo / "src" / "app.py").read_text()
    names = {(s.name, s.kind) for s in app.symbols}
    assert {("load_config", "function"), ("Server", "class"), ("start", "method")} <= names
    start = next(s for s in app.symbols if s.name == "start")
    lines = app.text.split("\n")
    assert "def start" in lines[start.start_line - 1]
    nb = next(d for d in docs if d.path == "analysis.ipynb")
    assert nb.kind == "notebook" and [s.span_kind for s in nb.segments] == ["cell", "cell"]
    assert "OUTPUT-SHOULD-NOT-APPEAR" not in nb.text and "x = 41 + 1" in nb.text
    assert sum(s.tokens for s in app.segments) == app.tokens > 0


def test_reingest_is_incremental_and_prunes(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    ingesting.ingest([repo], "repo")
    (repo / "docs" / "guide.md").write_text("# Guide\n\nChanged text.\n")
    (repo / "NOTES.txt").unlink()
    (repo / "new.py").write_text("def fresh():\n    return 1\n")

    processed: list[str] = []
    import ingest.pipeline as pipeline

    real = pipeline.process

    def spy(candidate, data, options, sha=None, memo=None):
        processed.append(candidate.path)
        return real(candidate, data, options, sha, memo)

    monkeypatch.setattr(pipeline, "process", spy)
    report = ingesting.ingest([repo], "repo")
    status = {f.path: f.status for f in report.files}
    assert status["docs/guide.md"] == "changed"
    assert status["new.py"] == "added"
    assert status["NOTES.txt"] == "removed"
    assert status["src/app.py"] == "unchanged"
    # unchanged files were neither re-read into segments nor re-counted
    assert "src/app.py" not in processed and "docs/guide.md" in processed
    _, docs = snapshot.load_documents("repo")
    paths = [d.path for d in docs]
    assert "NOTES.txt" not in paths
    # changed and new sources move to the end; unchanged keep their order
    assert paths[-2:] == ["docs/guide.md", "new.py"]


def test_failed_ingest_leaves_database_as_before(tmp_path, monkeypatch):
    repo = make_repo(tmp_path)
    ingesting.ingest([repo], "repo")
    before = _counts()
    summary_before = catalog.show_corpus("repo")
    (repo / "docs" / "guide.md").write_text("changed\n")
    (repo / "zzz.py").write_text("x = 1\n")

    from app.services import ingesting as svc

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(svc, "_insert_children", boom)
    with pytest.raises(RuntimeError):
        ingesting.ingest([repo], "repo")
    assert _counts() == before
    assert catalog.show_corpus("repo") == summary_before


def test_failed_first_ingest_creates_no_corpus(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("hello\n")
    from app.services import ingesting as svc

    monkeypatch.setattr(svc, "_insert_children",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        ingesting.ingest([tmp_path / "a.txt"], "c")
    assert not catalog.corpus_exists("c")


def test_pdfs_pages_and_statuses(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "report.pdf", ["Revenue grew 12 percent.", "", "Costs fell."])
    make_pdf(docs / "locked.pdf", ["secret"], password="pw")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a pdf")
    report = ingesting.ingest([docs], "docs")
    rows = {f.path: f for f in report.files}
    assert rows["report.pdf"].status == "added"
    assert any(f.endswith(":p2") for f in rows["report.pdf"].flags)  # blank page flagged/OCRed
    assert rows["locked.pdf"].status == "error" and "encrypted" in rows["locked.pdf"].reason
    assert rows["broken.pdf"].status == "error" and "corrupt" in rows["broken.pdf"].reason
    _, loaded = snapshot.load_documents("docs")
    pdf = next(d for d in loaded if d.path == "report.pdf")
    assert [(s.span_kind, s.start) for s in pdf.segments] == [("page", 1), ("page", 2),
                                                               ("page", 3)]
    assert "Revenue grew" in pdf.segments[0].text and "Costs fell" in pdf.segments[2].text
    assert pdf.metadata["page_count"] == "3"


@pytest.mark.parametrize("real", ["/usr/share/doc/libtasn1-doc/libtasn1.pdf",
                                  "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"])
def test_real_pdfs_on_this_machine(real):
    if not Path(real).exists():
        pytest.skip(f"{real} not on this machine")
    report = ingesting.ingest([Path(real)], "real")
    assert report.files[0].status == "added" and report.total_tokens > 1000
    _, docs = snapshot.load_documents("real")
    import pymupdf

    assert len(docs[0].segments) == pymupdf.open(real).page_count


def test_list_show_rm_and_errors(tmp_path):
    (tmp_path / "a.md").write_text("alpha\n")
    ingesting.ingest([tmp_path / "a.md"], "one")
    assert [c.name for c in catalog.list_corpora()] == ["one"]
    summary, files = catalog.show_corpus("one")
    assert summary.sources == 1 and files[0].path == "a.md"
    with pytest.raises(IngestError, match="no such corpus"):
        catalog.show_corpus("nope")
    with pytest.raises(IngestError, match="invalid corpus name"):
        ingesting.ingest([tmp_path / "a.md"], "../evil")
    with pytest.raises(IngestError, match="path not found"):
        ingesting.ingest([tmp_path / "missing"], "two")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestError, match="nothing to ingest"):
        ingesting.ingest([empty], "two")
    assert not catalog.corpus_exists("two")
    catalog.remove_corpus("one")
    assert catalog.list_corpora() == []
    assert _counts() == {"corpora": 0, "sources": 0, "segments": 0, "symbols": 0}


def test_tokenizer_change_recounts_everything(tmp_path):
    (tmp_path / "a.md").write_text("tokens tokens tokens 1234567\n" * 50)
    r1 = ingesting.ingest([tmp_path], "t", tokenizer="cl100k")
    r2 = ingesting.ingest([tmp_path], "t", tokenizer="o200k")
    assert r2.files[0].status == "changed"  # recounted under the new tokenizer
    assert r2.tokenizer == "o200k" and r1.version_hash != r2.version_hash


def test_files_changed_by_another_writer_during_an_ingest_are_read_again(tmp_path, db_url,
                                                                       monkeypatch):
    """Our pipeline took a.md as unchanged, then another writer removed the corpus before our
    write: the ingest reads again instead of failing (it raised KeyError before)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("alpha\n")
    ingesting.ingest([docs], "c")
    (docs / "b.md").write_text("beta\n")
    real = ingesting.run_pipeline
    calls = []

    def racing(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(sorted(result.unchanged))
        if len(calls) == 1:
            catalog.remove_corpus("c")  # the other writer, between our read and our write
        return result

    monkeypatch.setattr(ingesting, "run_pipeline", racing)
    report = ingesting.ingest([docs], "c")
    assert calls == [["a.md"], []]  # the second pass re-read a.md
    assert {f.path: f.status for f in report.files} == {"a.md": "added", "b.md": "added"}
    _, files = catalog.show_corpus("c")
    assert sorted(f.path for f in files) == ["a.md", "b.md"]
