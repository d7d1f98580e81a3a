"""Free text on the command line that is not UTF-8: bytes a shell passes through (Python
surrogate-escapes them) and lone surrogates. Every command refuses them in one line with exit
code 2, before any work; a path that exists may still hold any bytes. A real process each time,
as a user's shell would start it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

BAD = b"\xff\xfe"


def run(*args: str | bytes, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "app.cli", *(a if isinstance(a, bytes) else os.fsencode(a)
                                               for a in args)]
    return subprocess.run(argv, capture_output=True, input=stdin, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def refused(proc: subprocess.CompletedProcess) -> str:
    """The one line a refused argument prints; exit code 2 (a bad argument), no traceback."""
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err + proc.stdout.decode("utf-8", "replace")
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.fixture
def corpus(tmp_path) -> str:
    (tmp_path / "a.txt").write_text("the retry limit is decided in config\n")
    done = run("ingest", "notes", str(tmp_path / "a.txt"))
    assert done.returncode == 0, done.stderr
    return "notes"


def test_a_question_that_is_not_utf8_is_one_line(corpus):
    msg = refused(run("ask", corpus, BAD, "--dry-run"))
    assert msg == "error: the question is not valid UTF-8 text"
    msg = refused(run("ask", corpus, "--dry-run", stdin=BAD))
    assert msg == "error: the question is not valid UTF-8 text"


#: every command that takes free text, with BAD in one text argument
COMMANDS = [
    ("search", "notes", BAD),
    ("search", BAD, "retry"),
    ("ask", BAD, "where?", "--dry-run"),
    ("ask", "notes", "where?", "--cid", BAD, "--dry-run"),
    ("history", BAD),
    ("pack", BAD),
    ("corpora", "show", BAD),
    ("corpora", "rm", BAD),
    ("corpora", "share", "notes", "--group", BAD),
    ("ingest", "-c", BAD, "a.txt"),
    ("ingest", BAD, "a.txt"),
    ("--as", BAD, "corpora", "list"),
    ("eval", "report", BAD),
    ("eval", "run", "--haystack", BAD, "--dry-run"),
    ("audit", "--user", BAD),
    ("prewarm", BAD, "--endpoint", "http://127.0.0.1:9/v1"),
]


def test_every_command_refuses_text_that_is_not_utf8(corpus):
    for args in COMMANDS:
        assert "not valid UTF-8 text" in refused(run(*args)), args
    assert [c.name for c in stored()] == ["notes"]  # nothing made, nothing removed


def stored() -> list:
    from app.services.catalog import list_corpora

    return list_corpora()


def test_a_lone_surrogate_is_refused_by_the_same_check():
    """Python never decodes argv to U+D800 on POSIX, so the check is driven in-process here:
    the same callback every command's text goes through."""
    from app.cli import app

    for args in (["search", "notes", "\ud800"], ["ask", "notes", "a \udfff b"],
                 ["corpora", "show", "\ud800x"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0
        assert "not valid UTF-8 text" in str(result.exception), result.output


def test_a_path_that_is_not_utf8_is_told_the_way_round(tmp_path):
    """An input path is stored as text (a source's root): one that is not UTF-8 is refused in
    one line naming the way round, and the folder it is in works (names inside a folder may
    hold any bytes)."""
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    with open(folder + b"/menu.txt", "w") as fh:
        fh.write("soup of the day\n")
    assert "give the folder it is in" in refused(run("pack", folder))
    assert "give the folder it is in" in refused(run("ingest", "menu", folder))
    done = run("pack", str(tmp_path), "-o", str(tmp_path.parent / "out.xml"))
    assert done.returncode == 0, done.stderr
    assert "soup of the day" in (tmp_path.parent / "out.xml").read_text()


def test_the_check_is_declared_for_every_free_text_argument():
    """A new command's text argument without the check would crash deep inside: every `str`
    argument of every command is either checked or a path (listed here on purpose)."""
    from app.cli import app
    from app.commands.options import text_arg, text_or_path_arg

    paths = {"out_file", "manifest", "tokenizer", "model", "endpoint", "backend", "mode",
             "fmt", "toc", "budget", "keep", "max_file_size", "lengths", "depths", "metric",
             "since", "transport", "host", "gpus", "weights", "kv_dtype", "hybrid_kv",
             "context", "stage", "offload_dir"}
    unchecked = []
    for name, params in _params(typer.main.get_command(app)):
        for p in params:
            if p.name in paths or not _is_text(p):
                continue
            if getattr(p.callback, "__wrapped__", None) not in (text_arg, text_or_path_arg):
                unchecked.append(f"{name} {p.name}")
    assert unchecked == []


def _params(command, name="scoutlens"):
    yield name, command.params
    for sub, child in getattr(command, "commands", {}).items():
        yield from _params(child, f"{name} {sub}")


def _is_text(param) -> bool:
    return param.type_descriptor.annotation in (str, list[str])


def test_stdin_question_in_utf8_still_works(corpus, bundled_model):
    done = run("ask", corpus, "--dry-run", stdin="où est la limite ?\n".encode())
    assert done.returncode == 0, done.stderr
    assert b"what would go in" in done.stdout  # the question reached the planner
