"""An archive with two members of one name, both refused (two symlinks; a file and a FIFO),
failed the whole ingest with the database's uniqueness error, and the UI showed the SQL and
the server's upload path. Now the later member is skipped with a note, and a database rule
broken during an ingest is one line that quotes neither SQL nor a path."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest


def dup_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        for target in ("/etc/passwd", "/etc/shadow"):
            link = tarfile.TarInfo("evil")
            link.type = tarfile.SYMTYPE
            link.linkname = target
            tf.addfile(link)
        data = tarfile.TarInfo("pipe")
        data.size = 4
        tf.addfile(data, io.BytesIO(b"data"))
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        tf.addfile(fifo)
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 3
        tf.addfile(ok, io.BytesIO(b"ok\n"))
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_members_of_one_name_are_one_row_and_a_note(tmp_path):
    archive = dup_tar(tmp_path / "dup.tar")
    done = run("ingest", "dups", str(archive))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "duplicate member name, later member skipped: evil, pipe" in done.stderr

    from app.services.catalog import show_corpus

    _, files = show_corpus("dups")
    assert sorted((f.path, f.status) for f in files) == [
        ("evil", "skipped"), ("ok.txt", "ok"), ("pipe", "ok")]


def test_a_broken_database_rule_is_one_line_without_sql_or_paths(tmp_path, monkeypatch):
    """Whatever slips past the layers below (two sources of one path), the ingest says so in
    one line, and the database is left as it was."""
    from app.services import catalog, ingesting
    from ingest.types import IngestError, Skipped

    (tmp_path / "a.txt").write_text("a\n")
    real = ingesting.run_pipeline
    upload = str(tmp_path / "uploads" / "secret-server-path" / "x.tar")

    def twice(*args, **kwargs):
        result = real(*args, **kwargs)
        result.skipped += [Skipped("evil", upload, 0, "skipped", "refused")] * 2
        return result

    monkeypatch.setattr(ingesting, "run_pipeline", twice)
    with pytest.raises(IngestError) as caught:
        ingesting.ingest([tmp_path / "a.txt"], "broken")
    msg = str(caught.value)
    assert "\n" not in msg and "could not store corpus 'broken'" in msg
    for leak in ("INSERT", "SQL", "UNIQUE", "secret-server-path", str(tmp_path)):
        assert leak not in msg
    assert catalog.list_corpora() == []
