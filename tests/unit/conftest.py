"""What tests/unit builds once instead of once per test (`make test-fast` under 2 minutes on 2
cores): the database schema, and the bundled model converted to safetensors.

Both are made here by the same code a test would run (Alembic's migrations, the GGUF
conversion), once per session, and handed to each test as a copy of its own: no test sees
another's data. The migrations and the conversion themselves keep their own tests
(test_docs_storage migrates step by step; test_tokenizers converts in front of the test), and
tests/integration migrates every database from scratch."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from app import database


def _shared_dir(factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this session sees (each worker's basetemp is a child of
    the session's), so that the workers build a thing once between them."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(path: Path, build) -> Path:
    """PATH, built by BUILD(PATH) unless another worker built it: a file lock makes the others
    wait for the first instead of building it again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if not (path.parent / f".{path.name}.done").exists():
                build(path)
                (path.parent / f".{path.name}.done").touch()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return path


def _migrate(path: Path) -> None:
    url = f"sqlite:///{path}"
    database.get_db(url)  # the real migrations, as the app runs them on first use
    database.dispose_db(url)


@pytest.fixture(scope="session", autouse=True)
def migrated_schema(tmp_path_factory):
    """A fresh SQLite database gets the schema by a copy of one migrated at the start of the
    session (SQLite's backup API: 1 ms) instead of Alembic's six migrations (50 ms and a
    second of imports per worker). Only an empty database upgraded to head takes the copy: a
    step-by-step `upgrade(engine, "0005")` or a database with tables runs Alembic."""
    template = _once(_shared_dir(tmp_path_factory) / "schema" / "head.db", _migrate)
    migrate = database.upgrade

    def upgrade(engine, revision: str = "head") -> None:
        if revision != "head" or not _copied(engine, template):
            migrate(engine, revision)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(database, "upgrade", upgrade)
        yield template


def _copied(engine, template: Path) -> bool:
    """Copy TEMPLATE into ENGINE's database when that is an empty SQLite file. Anything else,
    or a copy that fails (a read-only file...), is left to Alembic, whose error the app reports
    as it would without this fixture."""
    if engine.dialect.name != "sqlite" or database.sqlite_file(
            engine.url.render_as_string(hide_password=False)) is None:
        return False
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if raw.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None:
                return False
            source = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
            try:
                source.backup(raw)
            finally:
                source.close()
    except (sqlite3.Error, DBAPIError):
        return False
    return True


def _converter_key() -> str:
    """What a conversion depends on besides its GGUF (which ensure_safetensors_model checks
    itself): the converter's code and the transformers that runs it."""
    import transformers

    import engine.convert

    code = Path(engine.convert.__file__).read_bytes()
    return hashlib.sha256(code + transformers.__version__.encode()).hexdigest()[:16]


@pytest.fixture(scope="session")
def converted_model(request, tmp_path_factory) -> Path:
    """The bundled GGUF converted to safetensors once (~25 s of CPU), by the app's own
    converter. Kept in pytest's cache between runs when the cache is on (keyed by the
    converter; the GGUF's digest is checked on every use), else once per session."""
    from engine.convert import ensure_safetensors_model

    cache = getattr(request.config, "cache", None)
    root = (cache.mkdir("scoutlens-converted-model") if cache is not None
            else _shared_dir(tmp_path_factory) / "converted-model")
    folder = root / _converter_key()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:  # one converter at a time; the rest reuse its work
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return ensure_safetensors_model(folder)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def bundled_model(converted_model, scoutlens_home) -> Path:
    """The bundled model in this test's SCOUTLENS_HOME, as its first use there would have
    converted it (hard links to the session's conversion: nothing is copied)."""
    from app.services.backends import BUNDLED_MODEL

    dest = scoutlens_home / "models" / BUNDLED_MODEL
    dest.mkdir(parents=True)
    for item in converted_model.iterdir():
        try:
            os.link(item, dest / item.name)
        except OSError:  # another file system
            shutil.copy2(item, dest / item.name)
    return dest


@pytest.fixture(scope="session")
def cli_server():
    """The CLI fork server of this worker (tests/cli_zygote.py), ended with the session."""
    from tests import cli_zygote

    yield cli_zygote
    cli_zygote.close()


@pytest.fixture(autouse=True)
def forked_cli(cli_server, monkeypatch):
    """`python -m app.cli ...` runs of a unit test come from a fork server that imported the
    libraries once (tests/cli_zygote.py says what stays real): ~0.4 s of CPU saved on each of
    ~215 runs. Only while a unit test runs: tests/integration runs every CLI for real."""
    import subprocess

    real = subprocess.run

    def run(args, *rest, **kw):
        if not rest and cli_server.forkable(args, kw):
            try:
                return cli_server.run(args, **kw)
            except cli_server.Unavailable:
                pass
        return real(args, *rest, **kw)

    monkeypatch.setattr(subprocess, "run", run)
