"""A database that cannot be used is one line naming it and the way out, from every command:
damaged or foreign files, read-only files and folders, a lock held past the timeout; and a
configured URL that would lose or scatter data is refused. A PostgreSQL server that refuses:
tests/integration/test_db_errors.py."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from app import database
from app.database import DatabaseError, dispose_db, get_db, session_scope
from app.services import corpora
from app.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
DOWN = "http://127.0.0.1:9/v1"  # `ask` reaches the database before it needs the server


def _cli(*args: str, home: Path, url: str | None = None, cwd: Path = ROOT):
    env = {**os.environ, "COLUMNS": "200", "SCOUTLENS_HOME": str(home)}
    env.pop("SCOUTLENS_DATABASE_URL", None)
    if url is not None:
        env["SCOUTLENS_DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=cwd)


def _one_line(proc, *words: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines()
             if not ln.startswith("using the stored corpus")]  # `ask` says what it asks
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _folder(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(6):
        (root / f"f{i}.txt").write_text(f"file {i} says hello\n" * 200)
    return root


@pytest.fixture(scope="module")
def stored_once(tmp_path_factory):
    """A real database, written by `scoutlens ingest`, checkpointed so the file holds it all;
    once per module (tests damage copies of it)."""
    root = tmp_path_factory.mktemp("stored")
    home, folder = root / "h", _folder(root / "docs")
    done = _cli("ingest", str(folder), "--corpus", "small", home=home)
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
        line = _one_line(_cli(*args, home=home), str(db), "README: Backups", "move it away")
        assert ("malformed" if how == "middle" else "not a database") in line, (args, line)


def test_a_read_only_database_reads_but_writes_are_one_line(stored):
    home, folder, db = stored
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    listed = _cli("corpora", "list", "--json", home=home, url=ro)
    assert listed.returncode == 0 and '"small"' in listed.stdout, listed.stderr
    _one_line(_cli("ingest", str(folder), "--corpus", "other", home=home, url=ro),
              str(db), "readonly", "writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_file_and_folder_are_one_line(stored, tmp_path):
    home, folder, db = stored
    db.chmod(0o444)
    try:
        _one_line(_cli("ingest", str(folder), "--corpus", "other", home=home), str(db))
    finally:
        db.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _one_line(_cli("corpora", "list", home=home, url=f"sqlite:///{locked / 'x.db'}"),
                  str(locked / "x.db"))
    finally:
        locked.chmod(0o755)


def test_a_lock_held_past_the_timeout_is_a_database_error(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 300)
    folder = _folder(tmp_path / "docs")
    corpora.ingest([folder], "small")
    (folder / "new.txt").write_text("a change to write\n")
    holder = sqlite3.connect(get_settings().home_dir / "scoutlens.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the timeout
    try:
        with pytest.raises(DatabaseError) as err:
            corpora.ingest([folder], "small")
        assert corpora.list_corpora()[0].sources == 6  # readers are not held up (WAL)
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
    folder = _folder(tmp_path / "docs")
    _one_line(_cli("ingest", str(folder), "--corpus", "c", home=tmp_path / "h", url=url),
              "in-memory", "sqlite:///PATH")


def test_a_missing_folder_is_created_only_inside_home(tmp_path):
    home = tmp_path / "h"
    outside = tmp_path / "no" / "such" / "dir" / "x.db"
    _one_line(_cli("corpora", "list", home=home, url=f"sqlite:///{outside}"),
              str(outside.parent), "does not exist")
    assert not (tmp_path / "no").exists()
    inside = home / "dbs" / "team" / "x.db"
    done = _cli("ingest", str(_folder(tmp_path / "docs")), "-c", "c", home=home,
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
