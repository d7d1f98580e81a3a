"""The unit tests' CLI fork server (tests/cli_zygote.py) gives what `python -m app.cli` gives:
the same exit code, output and errors, in its own process, directory and environment; and a
run it cannot give faithfully is a real subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests import cli_zygote

REAL = [sys.executable, "-m", "app.cli"]


@pytest.fixture(autouse=True)
def server_on(monkeypatch):
    """These tests are about the server, so they run with it even where the suite is told to
    run every CLI as a real subprocess (SCOUTLENS_TEST_REAL_CLI=1)."""
    monkeypatch.delenv("SCOUTLENS_TEST_REAL_CLI", raising=False)


def _real(args, **kw):
    kw.setdefault("env", {**os.environ, "SCOUTLENS_TEST_REAL_CLI": "1"})
    assert not cli_zygote.forkable(args, {"env": {**kw["env"], "FORCE_COLOR": "1"}})
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE, **kw)


def both(args, stdin: bytes = b"", **kw):
    """(forked, real) results of one run."""
    forked = cli_zygote.run(args, input=stdin, capture_output=True, timeout=120, **kw)
    proc = _real(args, **kw)
    out, err = proc.communicate(stdin, timeout=120)
    return forked, subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["ask", "nowhere", "why?"],  # a user's mistake: one line, exit 1
    [b"ask", b"\xff\xfe", b"why?"],  # an argument that is not UTF-8: exit 2
])
def test_a_forked_run_gives_what_a_real_one_gives(tmp_path, argv):
    env = {**os.environ, "SCOUTLENS_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    forked, real = both([*REAL, *argv], env=env, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        real.returncode, real.stdout, real.stderr)


def test_stdin_env_and_cwd_are_the_runs_own(tmp_path, bundled_model):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("the retry limit is seven\n")
    env = {**os.environ, "SCOUTLENS_HOME": str(tmp_path / "home")}
    done = cli_zygote.run([*REAL, "ingest", "notes", "docs"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home").is_dir()  # its SCOUTLENS_HOME, relative paths from its cwd
    forked, real = both([*REAL, "ask", "notes", "--dry-run", "--json"],
                        stdin=b"what is the retry limit?", env=env, cwd=tmp_path)
    assert forked.returncode == real.returncode == 0, forked.stderr
    assert json.loads(forked.stdout)["question"] == "what is the retry limit?"
    assert forked.stdout == real.stdout


def test_a_timeout_kills_the_run_and_says_so(tmp_path):
    env = {**os.environ, "SCOUTLENS_HOME": str(tmp_path / "home")}
    silent = socket.create_server(("127.0.0.1", 0))  # takes the connection, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
    start = time.monotonic()
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            cli_zygote.run([*REAL, "complete", "-p", "-", "--endpoint", url], input=b"hello",
                           capture_output=True, env=env, timeout=3)
    finally:
        silent.close()
    assert time.monotonic() - start < 30


def test_runs_it_cannot_give_faithfully_are_real_subprocesses():
    env = dict(os.environ)
    assert cli_zygote.forkable(REAL + ["--help"], {"env": env, "capture_output": True})
    assert not cli_zygote.forkable(REAL + ["--help"], {"env": {**env, "LC_ALL": "C"}})
    assert not cli_zygote.forkable(REAL + ["--help"], {"start_new_session": True})
    assert not cli_zygote.forkable([sys.executable, "-m", "pytest"], {})
    assert not cli_zygote.forkable(" ".join(REAL), {})


def test_the_suite_routes_cli_runs_through_it():
    done = subprocess.run([*REAL, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ingest" in done.stdout
    assert cli_zygote._server is not None and cli_zygote._server.proc.poll() is None


def test_what_it_preloads_reads_no_environment_and_makes_no_console():
    """The server's imports are inherited by every run, so none of them may make a console
    (rich reads the terminal and environment when one is made), fill a cache of the app's or
    start a thread: each would be the server's, not the run's."""
    probe = (
        "import functools, gc, importlib, sys, threading\n"
        "from rich.console import Console\n"
        "from tests import cli_zygote as z\n"
        "for name in z.PRELOAD + z.APP_PRELOAD: importlib.import_module(name)\n"
        "consoles = [o for o in gc.get_objects() if isinstance(o, Console)]\n"
        "filled = [f'{c.__module__}.{c.__qualname__}' for c in gc.get_objects()\n"
        "          if isinstance(c, functools._lru_cache_wrapper) and c.cache_info().currsize\n"
        "          and c.__module__.split('.')[0] in ('app', 'engine', 'ingest', 'common')]\n"
        "print(len(consoles), filled, threading.active_count(), 'torch' in sys.modules,\n"
        "      sorted(m for m in sys.modules if m == 'app.cli' or m.startswith('ui')))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "[]", "1", "False", "[]"], done.stdout


def test_a_server_that_died_is_replaced_and_the_run_still_runs(tmp_path):
    cli_zygote.run([*REAL, "--help"], capture_output=True, timeout=120)
    cli_zygote._server.proc.kill()
    cli_zygote._server.proc.wait()
    with pytest.raises(cli_zygote.Unavailable):
        cli_zygote.run([*REAL, "--help"], capture_output=True, timeout=120)
    done = subprocess.run([*REAL, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ingest" in done.stdout
    assert cli_zygote._server is not None and cli_zygote._server.proc.poll() is None
