"""The database layer's errors, no server needed: a libpq URL, a closed port or a URL that is no
database is one clear line (API and CLI), the password never shown. The database layer on
SQLite and PostgreSQL: tests/integration/test_database.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.database import (
    DatabaseError,
    dispose_db,
    get_db,
    normalize_url,
)

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_libpq_urls_use_psycopg():
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_or_bad_database_is_a_clear_error(monkeypatch):
    url = f"postgresql://scout:hunter2@127.0.0.1:{_closed_port()}/scoutlens"
    with pytest.raises(DatabaseError, match="cannot use the database") as err:
        get_db(url)
    assert "hunter2" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(DatabaseError, match="not a usable database URL"):
        get_db("mysql://u:p@127.0.0.1/db")  # no driver installed for it
    with pytest.raises(DatabaseError, match="not a usable database URL"):
        get_db("not a url")
    dispose_db(url)


@pytest.mark.parametrize("url", ["postgresql://scout:hunter2@127.0.0.1:{port}/scoutlens",
                                 "nonsense://"])
def test_cli_prints_one_line_for_a_bad_database(url):
    env = {**os.environ, "COLUMNS": "200",
           "SCOUTLENS_DATABASE_URL": url.format(port=_closed_port())}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "corpora", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    assert proc.stdout == ""
    assert json.dumps(url) not in proc.stderr
