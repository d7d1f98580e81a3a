"""Text a document or a person controls never drives the terminal: an error that quotes a path,
a pack written to the screen, a streamed answer. On a pipe or in a file the bytes stay as they
are (a pack is data); on a terminal escape sequences are shown as \\x1b, never obeyed (they
could clear the screen, retitle the window, write the clipboard with OSC 52 or forge a link)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from app.commands.shown import TerminalSafe, for_terminal

SEQUENCES = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]8;;file:///etc/passwd\x1b\\x"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})


def test_controls_are_visible_on_a_terminal_and_kept_in_a_pipe():
    text = f"line one\n\tcode {SEQUENCES} \x9b31m \u202eevil\n"
    screen = for_terminal(text, _Tty())
    assert not any(c in screen for c in "\x1b\x07\x9b\u202e")
    assert "\\x1b[2J" in screen and "\\x1b]52;c;" in screen
    assert screen.count("\n") == 2 and "\tcode" in screen  # lines and tabs are kept
    assert for_terminal(text, io.StringIO()) == text  # a pipe or a file gets the data
    tty = _Tty()
    TerminalSafe(tty).write(text)
    assert tty.getvalue() == screen


def test_an_error_quoting_a_path_prints_its_controls_visibly(tmp_path):
    done = run("ingest", "c", str(tmp_path / f"missing{SEQUENCES}"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "missing\\x1b[2J" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _on_a_terminal(*args: str, stderr=subprocess.DEVNULL) -> bytes:
    """What `scoutlens ARGS` writes to stdout (and stderr, if asked) on a terminal (a pty)."""
    leader, follower = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "app.cli", *args], stdout=follower,
                          stderr=follower if stderr is None else stderr,
                          env={**os.environ, "COLUMNS": "200"}) as proc:
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty closed: the command is done
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=300)
    os.close(leader)
    assert proc.returncode == 0
    return out


def test_pack_shows_a_documents_escape_sequences_on_a_terminal(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text(f"# Notes\n\nhello {SEQUENCES} world\n")
    screen = _on_a_terminal("pack", str(docs))
    assert b"hello" in screen
    assert b"\x1b" not in screen and b"\x07" not in screen
    assert b"\\x1b]52;c;" in screen
    piped = subprocess.run([sys.executable, "-m", "app.cli", "pack", str(docs)],
                           capture_output=True, timeout=300)
    assert piped.returncode == 0
    assert SEQUENCES.encode() in piped.stdout  # the data itself is unchanged in a pipe


def test_the_progress_line_shows_a_file_names_controls_visibly():
    from rich.console import Console

    from app.progress import pipeline_progress

    screen = io.StringIO()
    with pipeline_progress(Console(file=screen, force_terminal=True, width=200)) as update:
        update("read", 1, 2, "x\x1b]0;pwned\x07\x1b[2Jy.md")
    out = screen.getvalue()
    assert "\x1b]0;" not in out and "\x1b[2J" not in out and "\x07" not in out
    assert "\\x1b]0;pwned" in out


def test_an_answer_quoting_markup_and_escapes_streams_as_text_on_a_terminal(tmp_path):
    """On a terminal the progress bar runs while the answer starts; rich's stdout proxy read
    the answer as markup (`[/INST]` was a MarkupError traceback) and passed escapes on."""
    from fakes import FakeOpenAI, Reply

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nThe launch is on Monday.\n")
    assert run("ingest", "docs", str(docs)).returncode == 0
    model = FakeOpenAI().start()
    try:
        model.script(Reply(deltas=("It says [/INST] [bold]x[/bold]", f" {SEQUENCES} [S1].")))
        screen = _on_a_terminal("ask", "docs", "when is the launch?", "-b", "openai", "-e",
                                model.url, "-m", "fake", stderr=None)
    finally:
        model.close()
    assert b"Traceback" not in screen
    assert b"It says [/INST] [bold]x[/bold]" in screen
    assert b"\x1b]52;c;" not in screen.replace(b"\\x1b]52;c;", b"")
    assert b"\\x1b]0;pwned" in screen


def test_pack_into_a_file_from_an_interactive_shell_writes_the_file(tmp_path):
    """`scoutlens pack DIR > out.txt` with the shell's terminal on stderr: the progress bar
    redirected stdout to itself, so the pack went to the screen and out.txt stayed empty."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(50):
        (docs / f"n{i}.md").write_text(f"# Note {i}\n\nline [/INST] {i}\n")
    leader, follower = pty.openpty()
    with open(tmp_path / "out.txt", "wb") as out, subprocess.Popen(
            [sys.executable, "-m", "app.cli", "pack", str(docs)], stdout=out, stderr=follower,
            env={**os.environ, "COLUMNS": "200"}) as proc:
        os.close(follower)
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        proc.wait(timeout=300)
    os.close(leader)
    assert proc.returncode == 0
    packed = (tmp_path / "out.txt").read_text()
    assert packed.count("line [/INST]") == 50
    assert b"line [/INST]" not in screen
