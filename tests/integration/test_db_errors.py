"""A PostgreSQL server that is down or refuses (a wrong password, a missing database) is one line
naming it and the way out. The SQLite cases: tests/unit/test_db_errors.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_postgresql_down_or_refusing_is_one_line(pg_server, tmp_path):
    home = tmp_path / "h"
    down = f"postgresql://scout:hunter2@127.0.0.1:{_closed_port()}/db"
    line = _one_line(_cli("corpora", "list", home=home, url=down), "server running")
    assert "hunter2" not in line
    wrong = f"postgresql://postgres:not-the-password@127.0.0.1:{pg_server.port}/postgres"
    line = _one_line(_cli("corpora", "list", home=home, url=wrong), "password authentication",
                     "check the user and password")
    assert "not-the-password" not in line
    missing = pg_server.url("no_such_db_here")
    _one_line(_cli("ingest", str(_folder(tmp_path / "d")), "-c", "x", home=home, url=missing),
              "does not exist", "SCOUTLENS_DATABASE_URL")
