"""A database that cannot be used is one line naming it and the way out, from every command:
damaged or foreign files, read-only files and folders, a lock held past the timeout; and a
configured URL that would lose or scatter data is refused. A PostgreSQL server that refuses:
tests/integration/test_db_errors.py."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from helpers import db_cli, hello_folder, one_line_error

from app import database
from app.database import DatabaseError, dispose_db, get_db, session_scope
from app.services import catalog, ingesting
from app.settings import get_settings

DOWN = "http://127.0.0.1:9/v1"  # `ask` reaches the database before it needs the server




@pytest.fixture(scope="module")
def stored_once(tmp_path_factory):
    """A real database, written by `scoutlens ingest`, checkpointed so the file holds it all;
    once per module (tests damage copies of it)."""
    root = tmp_path_factory.mktemp("stored")
    home, folder = root / "h", hello_folder(root / "docs")
    done = db_cli("ingest", str(folder), "--corpus", "small", home=home)
    assert done.returncode == 0, done.stderr
    # closed here, not whenever it is collected: closing removes the -wal file, which must not
    # happen while a test copies the folder
    with closing(sqlite3.connect(home / "scoutlens.db")) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return home, folder


@pytest.fixture
def stored(stored_once, tmp_path):
    """This test's own copy of that data folder (home, the ingested folder, the database)."""
    template, folder = stored_once
    home = shutil.copytree(template, tmp_path / "h")
    return home, folder, home / "scoutlens.db"


def _damage_sources_table(db: Path) -> None:
    """Garbage over the `sources` table's root page: schema and migrations still read."""
    with sqlite3.connect(db) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='sources'").fetchone()
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[(root[0] - 1) * size: root[0] * size] = b"\xa5" * size
    db.write_bytes(bytes(data))


DAMAGE = {
    "middle": _damage_sources_table,
    "header": lambda db: db.write_bytes(b"garbage garbage!" + db.read_bytes()[16:]),
    "foreign": lambda db: db.write_text("not a database at all, just notes\n" * 200),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_database_is_one_line_in_every_command(stored, how):
    home, folder, db = stored
    DAMAGE[how](db)
    for args in (["corpora", "list"], ["corpora", "show", "small"], ["pack", "small"],
                 ["ingest", str(folder), "--corpus", "small"],
                 ["ask", "small", "what?", "--endpoint", DOWN]):
        line = one_line_error(db_cli(*args, home=home), str(db), "README: Backups", "move it away")
        assert ("malformed" if how == "middle" else "not a database") in line, (args, line)


def test_a_read_only_database_reads_but_writes_are_one_line(stored):
    home, folder, db = stored
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    listed = db_cli("corpora", "list", "--json", home=home, url=ro)
    assert listed.returncode == 0 and '"small"' in listed.stdout, listed.stderr
    one_line_error(db_cli("ingest", str(folder), "--corpus", "other", home=home, url=ro),
              str(db), "readonly", "writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_and_folder_are_one_line(stored, tmp_path):
    home, folder, db = stored
    db.chmod(0o444)
    try:
        one_line_error(db_cli("ingest", str(folder), "--corpus", "other", home=home), str(db))
    finally:
        db.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_error(db_cli("corpora", "list", home=home, url=f"sqlite:///{locked / 'x.db'}"),
                  str(locked / "x.db"))
    finally:
        locked.chmod(0o755)


def test_a_lock_held_past_the_timeout_is_a_database_error(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    folder = hello_folder(tmp_path / "docs")
    ingesting.ingest([folder], "small")
    (folder / "new.txt").write_text("a change to write\n")
    holder = sqlite3.connect(get_settings().home_dir / "scoutlens.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the timeout
    try:
        with pytest.raises(DatabaseError) as err:
            ingesting.ingest([folder], "small")
        assert catalog.list_corpora()[0].sources == 6  # readers are not held up (WAL)
    finally:
        holder.rollback()
        holder.close()
    message = str(err.value)
    assert "\n" not in message and "database is locked" in message and "try again" in message
    assert str(get_settings().home_dir / "scoutlens.db") in message


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file:mem1?mode=memory&cache=shared&uri=true"])
def test_an_in_memory_database_url_is_refused(tmp_path, url):
    """It would report every ingest as a success and keep nothing."""
    folder = hello_folder(tmp_path / "docs")
    one_line_error(db_cli("ingest", str(folder), "--corpus", "c", home=tmp_path / "h", url=url),
              "in-memory", "sqlite:///PATH")


def test_a_missing_folder_is_created_only_inside_home(tmp_path):
    home = tmp_path / "h"
    outside = tmp_path / "no" / "such" / "dir" / "x.db"
    one_line_error(db_cli("corpora", "list", home=home, url=f"sqlite:///{outside}"),
              str(outside.parent), "does not exist")
    assert not (tmp_path / "no").exists()
    inside = home / "dbs" / "team" / "x.db"
    done = db_cli("ingest", str(hello_folder(tmp_path / "docs")), "-c", "c", home=home,
                url=f"sqlite:///{inside}")
    assert done.returncode == 0, done.stderr
    assert inside.is_file()


def test_the_service_api_still_takes_an_in_memory_url():
    """Tests and tools that pass a URL themselves may use memory; only the setting refuses."""
    url = "sqlite://"
    try:
        get_db(url)
        with session_scope(url) as s:
            assert s.connection().exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        dispose_db(url)


def test_a_database_a_newer_scoutlens_upgraded_is_one_line_and_left_alone(stored):
    """A schema this version has no migration for (written by a newer scoutlens) is neither
    touched nor a traceback."""
    home, _, db = stored
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
        conn.commit()
    done = db_cli("corpora", "list", home=home)
    one_line_error(done, "upgraded by a newer scoutlens (schema 0999")
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0999",)
