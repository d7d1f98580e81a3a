"""The CLI as a hostile or careless user meets it: outputs over inputs, odd sizes and names,
interrupted runs, stricter re-ingests. A real process each time, the inputs built here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200", **env})


def stored() -> list:
    """The corpora the runs stored (SCOUTLENS_HOME is theirs), read here: a check, not a run."""
    from app.services.catalog import list_corpora

    return list_corpora()


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


# --- pack never overwrites what it reads -------------------------------------------------------


def test_pack_refuses_a_manifest_or_output_over_its_input(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my only copy\n")
    msg = one_line_error(run("pack", str(notes), "-o", str(tmp_path / "notes.xml"),
                             "--manifest", str(notes)))
    assert "is an input" in msg
    assert notes.read_text() == "my only copy\n" and not (tmp_path / "notes.xml").exists()
    one_line_error(run("pack", str(notes), "-o", str(notes)))
    assert notes.read_text() == "my only copy\n"
    # a link to the input is the input
    (tmp_path / "link.txt").symlink_to(notes)
    one_line_error(run("pack", str(notes), "-o", str(tmp_path / "link.txt")))
    assert notes.read_text() == "my only copy\n"


def test_pack_refuses_an_output_inside_an_input_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    msg = one_line_error(run("pack", str(src), "-o", str(src / "out" / "pack.xml")))
    assert "inside the input folder" in msg
    assert not (src / "out").exists()
    msg = one_line_error(run("pack", str(src), "-o", str(tmp_path / "p.xml"),
                             "--manifest", str(tmp_path / "p.xml")))
    assert "same file" in msg
    ok = run("pack", str(src), "-o", str(tmp_path / "p.xml"), "--manifest",
             str(tmp_path / "m.json"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "m.json").read_text())["sources"][0]["path"] == "a.py"
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_pack_to_an_unwritable_place_is_one_line(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("a\n")
    (tmp_path / "dir").mkdir()
    one_line_error(run("pack", str(src), "--manifest", str(tmp_path / "dir")))
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(run("pack", str(src), "-o", str(blocker / "sub" / "out.xml")))


# --- sizes and stricter re-ingests --------------------------------------------------------------


@pytest.mark.parametrize("size", ["-1MB", "-0.5", "nanMB", "infKB", "1TB", "MB", ""])
def test_bad_sizes_are_refused(tmp_path, size):
    (tmp_path / "a.txt").write_text("a\n")
    msg = one_line_error(run("ingest", str(tmp_path / "a.txt"), "-c", "x",
                             "--max-file-size", size))
    assert "not a size" in msg
    assert stored() == []  # nothing was stored


def test_stricter_reingest_reports_what_left(tmp_path):
    src = tmp_path / "small"
    src.mkdir()
    (src / "a.txt").write_text("alpha\n" * 20)
    (src / "b.txt").write_text("beta\n" * 20)
    assert run("ingest", str(src), "-c", "small").returncode == 0
    proc = run("ingest", str(src), "-c", "small", "--max-file-size", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["removed"] == 2
    assert {f["path"]: f["status"] for f in report["files"]} == {"a.txt": "removed",
                                                                  "b.txt": "removed"}
    assert [c.sources for c in stored()] == [0]


# --- names that are not text -------------------------------------------------------------------


def test_file_names_that_are_not_utf8_or_hold_control_characters(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    names = [b"latin\xe9.txt", b"new\nline.txt", b"esc\x1b[31mred.txt", b"cr\rret.txt"]
    for raw in names:
        with open(os.path.join(os.fsencode(src), raw), "wb") as fh:
            fh.write(b"plain content\n")
    proc = run("ingest", str(src), "-c", "names", "--json")
    assert proc.returncode == 0, proc.stderr
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    assert set(files) == {"latin\\xe9.txt", "new\\nline.txt", "esc\\x1b[31mred.txt",
                          "cr\\rret.txt"}
    assert "name:not-utf8" in files["latin\\xe9.txt"]["flags"]
    assert "name:control-characters" in files["new\\nline.txt"]["flags"]
    packed = run("pack", "names", "--manifest", str(tmp_path / "m.json"))
    assert packed.returncode == 0, packed.stderr
    assert "\x1b" not in packed.stdout and "\r" not in packed.stdout
    manifest = [line for line in packed.stdout.splitlines() if "new\\nline.txt" in line]
    assert manifest, "each path stays on one manifest line"
    pack_dir = run("pack", str(src))
    assert pack_dir.returncode == 0 and "latin\\xe9.txt" in pack_dir.stdout


def test_ingest_with_unreadable_files_exits_3_and_stores_the_rest(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")  # CI runs as root: the folder case below covers it
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    (src / "locked.txt").write_text("secret\n")
    (src / "locked.txt").chmod(0)
    proc = run("ingest", str(src), "-c", "partial")
    assert proc.returncode == 3, proc.stderr
    assert "could not be read" in proc.stderr


def test_errored_files_give_exit_code_3(tmp_path):
    """A corrupt PDF is an error row; the rest is stored and the exit code says so."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    (src / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not a pdf at all")
    proc = run("ingest", str(src), "-c", "partial")
    assert proc.returncode == 3, proc.stderr
    assert "could not be read" in proc.stderr and "Traceback" not in proc.stderr
    assert [c.sources for c in stored()] == [1]
    assert run("ingest", str(src), "-c", "partial", "--json").returncode == 3


def test_folder_symlink_out_of_the_input_is_reported(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("private\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    (src / "escape").symlink_to(outside, target_is_directory=True)
    proc = run("ingest", str(src), "-c", "links", "--json")
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    assert files["escape/"]["status"] == "skipped"
    assert "outside the input" in files["escape/"]["reason"]
    assert not any("private" in p for p in files)


# --- concurrent ingests -----------------------------------------------------------------------


def test_two_ingests_of_one_corpus_at_once_report_no_false_changes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * 50)
    env = {**os.environ, "COLUMNS": "200"}
    procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", str(src), "-c", "c",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    for report in reports:
        assert report["summary"]["changed"] == 0, report["summary"]
        assert report["summary"]["added"] + report["summary"]["unchanged"] == 40


# --- interrupted runs leave nothing behind -----------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_tokenizer_workers_die_with_a_killed_parent(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from ingest.counting import Counter
        from ingest.tokenizers import load_tokenizer
        counter = Counter(load_tokenizer("cl100k"), workers=2)
        for i in range(6):
            counter.add(i, "word " * 250_000)   # enough work to start the process pool
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) >= 2, "the pool never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived their parent"


def _big_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(60):
            zf.writestr(f"f{i:03}.txt", os.urandom(400_000).hex())  # 48 MB, slow to read
    return path


def _start_ingest(archive: Path, home: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", str(archive), "-c", "big"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SCOUTLENS_HOME": str(home)})
    deadline = time.monotonic() + 60
    tmp = home / "tmp"
    while time.monotonic() < deadline:
        found = list(tmp.glob("scoutlens-*/archive-0/f059.txt")) if tmp.exists() else []
        if found:
            return proc, found[0].parents[1]
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the archive was never extracted under SCOUTLENS_HOME/tmp")


def test_sigterm_during_an_archive_ingest_cleans_up(tmp_path):
    archive = _big_zip(tmp_path / "big.zip")
    home = tmp_path / "home"
    proc, work = _start_ingest(archive, home)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "interrupted" in err
    assert not work.exists()
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"scoutlens-{proc.pid}-*"))


def test_a_killed_ingests_folder_is_swept_at_the_next_start(tmp_path):
    archive = _big_zip(tmp_path / "big.zip")
    home = tmp_path / "home"
    proc, work = _start_ingest(archive, home)
    proc.kill()
    proc.wait()
    assert work.exists()  # kill -9 cannot clean up
    small = tmp_path / "s.zip"
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("a.txt", "a\n")
    done = run("ingest", str(small), "-c", "small", SCOUTLENS_HOME=str(home))
    assert done.returncode == 0, done.stderr
    assert not work.exists()


def test_trees_deeper_than_the_recursion_limit(tmp_path):
    """1,500 nested folders (3.11's os.walk and pathlib.mkdir recurse per level)."""
    archive = tmp_path / "deep.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/" * 1500 + "x.txt", "deep\n")
        zf.writestr("top.txt", "top\n")
    proc = run("ingest", str(archive), "-c", "deep", "--json")
    assert proc.returncode in (0, 3) and "Traceback" not in proc.stderr, proc.stderr[-500:]
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    assert files["top.txt"]["status"] == "added"
    assert any(f["status"] in ("skipped", "error") and f["path"].endswith("x.txt")
               for f in files.values())

    folder = tmp_path / "local"
    (folder / "top.txt").parent.mkdir()
    (folder / "top.txt").write_text("top\n")
    deep = str(folder)
    try:
        for _ in range(1200):
            deep = os.path.join(deep, "a")
            os.mkdir(deep)
        with open(os.path.join(deep, "x.txt"), "w") as fh:
            fh.write("deep\n")
        proc = run("ingest", str(folder), "-c", "local", "--json")
    finally:
        _remove_chain(str(folder / "a"))
    assert proc.returncode in (0, 3) and "Traceback" not in proc.stderr, proc.stderr[-500:]
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    assert files["top.txt"]["status"] == "added" and len(files) == 2


def _remove_chain(top: str) -> None:
    """Remove a chain of nested folders bottom-up without recursion: pytest's own clean-up of
    old temporary folders (shutil.rmtree, recursive on 3.11) dies on one 1,200 levels deep."""
    chain = [top]
    while os.path.isdir(chain[-1]):
        chain.append(os.path.join(chain[-1], "a"))
    for folder in reversed(chain[:-1]):
        for name in os.listdir(folder):
            if not os.path.isdir(os.path.join(folder, name)):
                os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def test_a_signal_landing_in_a_finalizer_is_sent_again(monkeypatch):
    """A KeyboardInterrupt raised inside `__del__` is dropped by Python (a SIGTERM during an
    archive ingest once hit a ZipFile's finalizer and the ingest ran on to the end): the
    handler sees the finalizer on the stack and re-sends the signal instead."""
    from app.cli import stop_handler

    sent: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(sig))
    stopped: list[int] = []
    handler = stop_handler(stopped)

    class Finalized:
        def __del__(self):
            handler(signal.SIGTERM, sys._getframe())

    obj = Finalized()
    del obj  # the handler runs inside __del__: no exception, a second signal is scheduled
    time.sleep(0.3)
    assert sent == [signal.SIGTERM] and stopped == [signal.SIGTERM]
    with pytest.raises(KeyboardInterrupt):  # anywhere else: stop now
        handler(signal.SIGTERM, sys._getframe())
