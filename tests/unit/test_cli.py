"""The `scoutlens` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import make_pdf, make_repo


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


def test_ingest_show_pack_rm_roundtrip(tmp_path):
    repo = make_repo(tmp_path)
    proc = run("ingest", str(repo), "--corpus", "demo", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["added"] >= 5 and report["total_tokens"] > 0
    assert {"path": "logo.ico", "status": "skipped"}.items() <= next(
        f for f in report["files"] if f["path"] == "logo.ico").items()

    listed = json.loads(run("corpora", "list", "--json").stdout)
    assert [c["name"] for c in listed] == ["demo"]
    shown = json.loads(run("corpora", "show", "demo", "--json").stdout)
    assert shown["tokens"] == report["total_tokens"]
    assert shown["tree"]["src/"] > 0

    out = tmp_path / "demo.xml"
    proc = run("pack", "demo", "--budget", "128k", "--out", str(out), "--manifest",
               str(tmp_path / "m.json"))
    assert proc.returncode == 0, proc.stderr
    assert "<source id=\"S1\"" in out.read_text()
    assert json.loads((tmp_path / "m.json").read_text())["budget"] == 131072

    again = json.loads(run("ingest", str(repo), "--corpus", "demo", "--json").stdout)
    assert again["summary"]["unchanged"] == report["summary"]["added"]
    assert again["summary"]["added"] == 0

    assert run("corpora", "rm", "demo").returncode == 0
    assert json.loads(run("corpora", "list", "--json").stdout) == []


def test_user_mistakes_get_clear_messages_not_tracebacks(tmp_path):
    cases = [
        (("ingest", str(tmp_path / "missing"), "--corpus", "x"), "path not found"),
        (("corpora", "show", "nope"), "no such corpus"),
        (("corpora", "rm", "nope"), "no such corpus"),
        (("pack", "nope-not-a-corpus"), "path not found"),
        (("pack", str(tmp_path), "--budget", "lots"), "not a token budget"),
        (("pack", str(tmp_path), "--tokenizer", "gpt9"), "unknown tokenizer"),
        (("pack", str(tmp_path), "--tokenizer", "llama4:/nope/tokenizer.model"), "not found"),
        (("ingest", str(tmp_path), "--corpus", "x", "--keep", "everything"), "unknown rule"),
        (("pack", str(tmp_path), "--format", "html"), "unknown format"),
    ]
    (tmp_path / "a.txt").write_text("some text\n")
    for args, message in cases:
        proc = run(*args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert message in proc.stderr.replace("\n", " "), (args, proc.stderr)
        no_traceback(proc)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("ingest", str(empty), "--corpus", "e")
    assert proc.returncode == 1 and "nothing to ingest" in proc.stderr
    assert json.loads(run("corpora", "list", "--json").stdout) == []


def test_over_budget_message_names_total_budget_and_largest(tmp_path):
    repo = make_repo(tmp_path)
    proc = run("pack", str(repo), "--budget", "100", "--out", str(tmp_path / "o.xml"))
    assert proc.returncode == 1
    text = proc.stderr.replace("\n", " ")
    assert "over the budget of 100" in text and "src/app.py" in text
    no_traceback(proc)
    proc = run("pack", str(repo), "--budget", "300", "--fit", "--out", str(tmp_path / "o.xml"))
    assert proc.returncode == 0, proc.stderr
    assert "dropped" in proc.stderr or "reduced" in proc.stderr


def test_hostile_zip_is_contained(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("proj/main.py", "def main():\n    return 42\n")
        zf.writestr("../../escaped.txt", "should never be written")
        zf.writestr("/abs/path.txt", "nor this")
    archive = tmp_path / "upload.zip"
    archive.write_bytes(buf.getvalue())
    proc = run("ingest", str(archive), "--corpus", "z", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    statuses = {f["path"]: f for f in report["files"]}
    assert statuses["proj/main.py"]["status"] == "added"
    refused = [f for f in report["files"] if "refused" in f["reason"]]
    assert len(refused) == 2
    assert not list(tmp_path.parent.rglob("escaped.txt"))
    assert not Path("/abs/path.txt").exists()

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.txt", b"\0" * (60 * 1024 * 1024))
    (tmp_path / "bomb.zip").write_bytes(bomb.getvalue())
    proc = run("ingest", str(tmp_path / "bomb.zip"), str(tmp_path / "upload.zip"),
               "--corpus", "b", "--json")
    assert proc.returncode == 0, proc.stderr
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    # the bomb member is refused on its own; the rest of every archive is kept
    assert files["bomb.zip/zeros.txt"]["status"] == "skipped"
    assert "zip bomb" in files["bomb.zip/zeros.txt"]["reason"]
    assert files["upload.zip/proj/main.py"]["status"] == "added"


def test_bad_files_get_a_status_and_the_run_finishes(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (d / "loop").symlink_to(d)
    (d / "dangling.txt").symlink_to(d / "nowhere")
    make_pdf(d / "locked.pdf", ["x"], password="pw")
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.4\n%%EOF")
    (d / "ok.md").write_text("fine\n")
    proc = run("ingest", str(d), "--corpus", "m", "--json")
    assert proc.returncode == 3, proc.stderr  # stored, but some files could not be read
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    assert files["ok.md"]["status"] == "added"
    assert "invalid-utf8" in files["latin1.txt"]["flags"]
    assert files["locked.pdf"]["status"] == "error"
    assert files["corrupt.pdf"]["status"] == "error"
    assert files["dangling.txt"]["status"] == "skipped"


def test_pack_to_stdout_and_markdown(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    return 1\n")
    proc = run("pack", str(tmp_path / "a.py"), "--format", "markdown")
    assert proc.returncode == 0
    assert "```python\ndef f():\n    return 1\n```" in proc.stdout
    assert "## Manifest" in proc.stdout


def test_keep_help_names_every_keepable_rule():
    from app.commands.options import KEEP_HELP
    from app.services.ingest_options import KEEPABLE

    assert KEEP_HELP.split(", ") == list(KEEPABLE)


def test_ingest_takes_the_corpus_as_ask_and_pack_do(tmp_path):
    """`ingest NAME PATH...` (a bare first word is the corpus), `ingest PATH` (named after the
    path) and `ingest PATH -c NAME` (every argument a path) store the same way."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha\n")
    (tmp_path / "b.txt").write_text("bravo\n")
    named = run("ingest", "notes", str(docs), str(tmp_path / "b.txt"), "--json")
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["corpus"] == "notes"
    assert {f["path"] for f in json.loads(named.stdout)["files"]} == {"docs/a.md", "b.txt"}
    by_path = run("ingest", "./docs", "--json", cwd=tmp_path)
    assert by_path.returncode == 0 and json.loads(by_path.stdout)["corpus"] == "docs"
    flagged = run("ingest", str(docs), str(tmp_path / "b.txt"), "-c", "flagged", "--json")
    assert flagged.returncode == 0 and json.loads(flagged.stdout)["corpus"] == "flagged"
    missing = run("ingest", "notes", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "nope" in missing.stderr
    no_traceback(missing)
    listed = {c["name"] for c in json.loads(run("corpora", "list", "--json").stdout)}
    assert listed == {"notes", "docs", "flagged"}
