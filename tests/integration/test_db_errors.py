"""A PostgreSQL server that is down or refuses (a wrong password, a missing database) is one line
naming it and the way out. The SQLite cases: tests/unit/test_db_errors.py."""

from __future__ import annotations

import socket

from helpers import db_cli, hello_folder, one_line_error


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_postgresql_down_or_refusing_is_one_line(pg_server, tmp_path):
    home = tmp_path / "h"
    down = f"postgresql://scout:hunter2@127.0.0.1:{_closed_port()}/db"
    line = one_line_error(db_cli("corpora", "list", home=home, url=down), "server running")
    assert "hunter2" not in line
    wrong = f"postgresql://postgres:not-the-password@127.0.0.1:{pg_server.port}/postgres"
    line = one_line_error(db_cli("corpora", "list", home=home, url=wrong),
                          "password authentication", "check the user and password")
    assert "not-the-password" not in line
    missing = pg_server.url("no_such_db_here")
    folder = str(hello_folder(tmp_path / "d"))
    one_line_error(db_cli("ingest", folder, "-c", "x", home=home, url=missing),
                   "does not exist", "SCOUTLENS_DATABASE_URL")
