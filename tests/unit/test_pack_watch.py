"""`scoutlens pack --watch` (app/services/pack_watch.py): the pack is written again after each
change under the watched paths, by real file events (inotify through watchdog) or by polling,
and a pack that fails leaves the last one in place while watching goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.services.pack_watch import Repack, watch
from app.services.packing import PackInput
from ingest.types import IngestError

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 30  # a failing test's bound, not a timing check


class Watching:
    """`watch` on a thread, its packs collected as they come."""

    def __init__(self, job: PackInput, **kw) -> None:
        self.packs: list[Repack] = []
        self.notes: list[str] = []
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(job, kw), daemon=True)
        self.thread.start()

    def _run(self, job: PackInput, kw: dict) -> None:
        try:
            watch(job, self.packs.append, self.stop, note=self.notes.append, **kw)
        except BaseException as exc:  # handed to the test
            self.failure = exc

    def until(self, n: int) -> Repack:
        """The n-th pack (1 = the first), waiting for it."""
        end = time.monotonic() + DEADLINE_S
        while len(self.packs) < n and time.monotonic() < end and self.failure is None:
            time.sleep(0.02)
        assert self.failure is None, self.failure
        assert len(self.packs) >= n, f"only {len(self.packs)} packs"
        return self.packs[n - 1]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(DEADLINE_S)
        assert not self.thread.is_alive()


def _folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "a.py").write_text("def alpha():\n    return 1\n")
    (src / "pkg" / "b.md").write_text("# Bravo\n\nNotes.\n")
    return src


def _job(src: Path, tmp_path: Path) -> PackInput:
    return PackInput([str(src)], tokenizer="cl100k", out=str(tmp_path / "out.xml"),
                     manifest=str(tmp_path / "out.json"))


@pytest.mark.parametrize("events", [True, False], ids=["file-events", "polling"])
def test_each_change_is_packed_again(tmp_path, events):
    src = _folder(tmp_path)
    out = tmp_path / "out.xml"
    w = Watching(_job(src, tmp_path), events=events, poll_s=0.2)
    try:
        first = w.until(1)
        assert first.error is None and len(first.outcome.result.blocks) == 2
        assert first.events == ("file events" if events else "polling every 0.2 s")

        (src / "a.py").write_text("def alpha():\n    return 'edited'\n")
        assert w.until(2).error is None and "'edited'" in out.read_text()

        (src / "new" / "deep").mkdir(parents=True)  # a folder made after watching began
        (src / "new" / "deep" / "c.txt").write_text("charlie\n")
        while "charlie" not in out.read_text():
            w.until(len(w.packs) + 1)
        (src / "pkg" / "b.md").unlink()
        while "Bravo" in out.read_text():
            w.until(len(w.packs) + 1)
        last = w.packs[-1].outcome
        assert sorted(b.path for b in last.result.blocks) == ["a.py", "new/deep/c.txt"]
    finally:
        w.close()


def test_a_failed_repack_keeps_the_last_pack_and_watching_goes_on(tmp_path):
    src = _folder(tmp_path)
    out = tmp_path / "out.xml"
    w = Watching(_job(src, tmp_path))
    try:
        w.until(1)
        kept = out.read_text()
        (src / "a.py").unlink()
        (src / "pkg" / "b.md").unlink()
        failed = w.until(2)
        while failed.error is None:  # the two deletions may come as two packs
            failed = w.until(len(w.packs) + 1)
        assert "nothing to pack" in failed.error and failed.outcome is None
        assert out.read_text() == kept
        (src / "back.txt").write_text("back again\n")
        while "back again" not in out.read_text():
            w.until(len(w.packs) + 1)
    finally:
        w.close()


def test_a_watched_folder_deleted_and_made_again_is_watched_again(tmp_path):
    """Deleting the folder takes its file watches with it: once it is back (a checkout that
    swaps the folder, `rm -r` and a fresh clone) the watches are made again."""
    import shutil

    src = _folder(tmp_path)
    out = tmp_path / "out.xml"
    w = Watching(_job(src, tmp_path))
    try:
        w.until(1)
        shutil.rmtree(src)
        failed = w.until(2)
        while failed.error is None:
            failed = w.until(len(w.packs) + 1)
        assert "not found" in failed.error
        src.mkdir()
        (src / "fresh.txt").write_text("made again\n")
        while "made again" not in out.read_text():
            w.until(len(w.packs) + 1)
        (src / "later.txt").write_text("seen later\n")  # by the new watches
        while "seen later" not in out.read_text():
            w.until(len(w.packs) + 1)
    finally:
        w.close()


@pytest.mark.parametrize("writer", ["its own data folder", "git"])
def test_writes_that_change_no_pack_do_not_wake_it(tmp_path, monkeypatch, writer):
    """The memo and caches each pack writes can lie inside a watched folder (a packed home):
    they must not start another pack, and another, forever. `git status` rewrites
    .git/index: nothing in .git is ever packed."""
    src = _folder(tmp_path)
    if writer == "git":
        (src / ".git").mkdir()
    else:
        monkeypatch.setenv("SCOUTLENS_HOME", str(src / ".scoutlens"))
    w = Watching(_job(src, tmp_path))
    try:
        w.until(1)
        if writer == "git":
            for i in range(5):
                (src / ".git" / "index").write_bytes(b"DIRC" + bytes([i]) * 64)
        else:
            assert (src / ".scoutlens").is_dir()  # the first pack wrote its memo in there
        time.sleep(1.5)
        assert len(w.packs) == 1
    finally:
        w.close()


def test_an_output_that_cannot_be_written_is_one_line_and_watching_goes_on(tmp_path):
    src = _folder(tmp_path)
    (tmp_path / "od").mkdir()
    out = tmp_path / "od" / "out.xml"
    job = PackInput([str(src)], tokenizer="cl100k", out=str(out))
    w = Watching(job)
    try:
        w.until(1)
        out.unlink()
        out.symlink_to(out.name)  # a link to itself: resolving it loops
        (src / "a.py").write_text("looped = 1\n")
        failed = w.until(2)
        assert failed.error is not None and "cannot write --out" in failed.error
        out.unlink()
        (src / "a.py").write_text("mended = 1\n")
        while not out.exists() or "mended" not in out.read_text():
            w.until(len(w.packs) + 1)
    finally:
        w.close()


def test_an_output_that_loops_from_the_start_is_the_first_packs_error(tmp_path):
    src = _folder(tmp_path)
    loop = tmp_path / "loop.xml"
    loop.symlink_to(loop.name)
    with pytest.raises(IngestError, match="cannot write --out"):
        watch(PackInput([str(src)], tokenizer="cl100k", out=str(loop)), lambda r: None,
              threading.Event())


def test_ctrl_c_before_the_first_pack_is_written_is_an_interruption(monkeypatch):
    """Stopped before anything was packed, the command must not say a pack is complete: the
    interruption goes on to the CLI's handler (exit 130), as for a plain pack."""
    from app.commands import pack as command
    from app.services import pack_watch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pack_watch, "watch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        command._watch(PackInput(["x"], out="o.xml"))


def test_without_file_events_it_polls(tmp_path, monkeypatch):
    """inotify's watch limit (ENOSPC) or a file system without events: polling instead."""
    import errno

    from watchdog.observers import inotify

    def refuse(self, *a, **k):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(inotify.InotifyObserver, "start", refuse)
    src = _folder(tmp_path)
    w = Watching(_job(src, tmp_path), poll_s=0.2)
    try:
        assert w.until(1).events == "polling every 0.2 s"
        assert any("inotify watch limit reached" in n for n in w.notes)
        (src / "a.py").write_text("polled = True\n")
        while "polled = True" not in (tmp_path / "out.xml").read_text():
            w.until(len(w.packs) + 1)
    finally:
        w.close()


@pytest.mark.parametrize(("out", "target", "message"), [
    (None, "src", "give --out FILE"),
    ("-", "src", "give --out FILE"),
    ("o.xml", "no-such-corpus", "packs paths on disk: no-such-corpus"),
])
def test_what_it_cannot_watch_is_one_line(tmp_path, out, target, message):
    _folder(tmp_path)
    os.chdir(tmp_path)
    with pytest.raises(IngestError, match=message):
        watch(PackInput([target], tokenizer="cl100k", out=out), lambda r: None,
              threading.Event())


def test_the_command_repacks_and_stops_on_ctrl_c(tmp_path):
    """The real command in its own process: the first pack, a re-pack after an edit, then
    SIGINT ends it with status 0 and no traceback."""
    src = _folder(tmp_path)
    out = tmp_path / "out.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLUMNS")}
    env["COLUMNS"] = "200"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "pack", str(src), "-t", "cl100k", "--out", str(out),
         "--watch"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        lines: list[str] = []

        def line_with(text: str) -> str:
            end = time.monotonic() + DEADLINE_S
            while time.monotonic() < end:
                line = proc.stderr.readline()
                if not line:
                    break
                lines.append(line)
                if text in line:
                    return line
            raise AssertionError(f"no {text!r} in {lines}")

        line_with("watching 1 path (file events)")
        (src / "a.py").write_text("edited_here = 1\n")
        assert "2 sources" in line_with("re-packed in")
        assert "edited_here" in out.read_text()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=DEADLINE_S)[1], None
        assert proc.returncode == 0, "".join(lines) + rest
        assert "stopped watching" in rest and "Traceback" not in "".join(lines) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
