"""The pack's stat memo (ingest/statmemo.py): a re-pack reads only the files whose stamp changed,
and packs exactly what a pack without the memo packs."""

from __future__ import annotations

import json
import marshal
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from helpers import make_repo

import ingest.pipeline
from app.services.packing import PackInput, pack
from app.settings import get_settings
from ingest import statmemo
from ingest.types import IngestError


@pytest.fixture
def reads(monkeypatch):
    """The files the pipeline opened, by path shown."""
    opened: list[str] = []
    real = ingest.pipeline.read_bytes

    def counting(cand, stamped=None):
        opened.append(cand.path)
        return real(cand, stamped)

    monkeypatch.setattr(ingest.pipeline, "read_bytes", counting)
    return opened


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test count as settled: no margin for a coarse clock."""
    monkeypatch.setattr(statmemo, "RACY_NS", 0)


def _pack(tmp_path: Path, target: Path, name: str, **kw) -> tuple[str, dict]:
    out, man = tmp_path / name, tmp_path / f"{name}.json"
    pack(PackInput([str(target)], tokenizer="cl100k", out=str(out), manifest=str(man), **kw))
    return out.read_text(), json.loads(man.read_text())


def _memo_dir() -> Path:
    return get_settings().cache_dir / "pack-memo"


def _fresh(tmp_path: Path, target: Path, name: str) -> tuple[str, dict]:
    """The same pack with no memo at all (the memo it leaves is moved out of the way)."""
    aside = tmp_path / "memo-aside"
    _memo_dir().rename(aside)
    try:
        return _pack(tmp_path, target, name)
    finally:
        import shutil

        shutil.rmtree(_memo_dir(), ignore_errors=True)
        aside.rename(_memo_dir())


def test_repack_reads_only_what_changed_and_packs_the_same(tmp_path, reads, settled):
    repo = make_repo(tmp_path)
    first, _ = _pack(tmp_path, repo, "a.xml")
    read_first = len(reads)
    assert read_first >= 4
    reads.clear()
    second, _ = _pack(tmp_path, repo, "b.xml")
    assert reads == [] and second == first  # nothing opened, the same bytes

    (repo / "src" / "app.py").write_text("def changed():\n    return 'new text'\n")
    reads.clear()
    third, manifest = _pack(tmp_path, repo, "c.xml")
    assert reads == ["src/app.py"]
    assert "new text" in third and "load_config" not in third
    reads.clear()
    assert (third, manifest) == _fresh(tmp_path, repo, "d.xml")
    assert len(reads) == read_first  # the pack without a memo read everything


def test_a_rewrite_that_restores_size_and_mtime_is_still_seen(tmp_path, reads, settled):
    repo = make_repo(tmp_path)
    guide = repo / "docs" / "guide.md"
    _pack(tmp_path, repo, "a.xml")
    st = guide.stat()
    old = guide.read_text()
    guide.write_text(old.replace("server", "SERVER"))  # same size
    os.utime(guide, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: ctime moves
    reads.clear()
    text, _ = _pack(tmp_path, repo, "b.xml")
    assert reads == ["docs/guide.md"] and "SERVER" in text


def test_a_file_written_just_before_the_pack_is_read_again(tmp_path, reads):
    repo = make_repo(tmp_path)  # every file written now: within the racy margin
    _pack(tmp_path, repo, "a.xml")
    n = len(reads)
    reads.clear()
    _pack(tmp_path, repo, "b.xml")
    assert len(reads) == n


def test_a_deleted_file_leaves_the_pack_and_the_memo(tmp_path, reads, settled):
    repo = make_repo(tmp_path)
    _pack(tmp_path, repo, "a.xml")
    (repo / "docs" / "guide.md").unlink()
    reads.clear()
    text, manifest = _pack(tmp_path, repo, "b.xml")
    assert reads == [] and "docs/guide.md" not in {s["path"] for s in manifest["sources"]}
    (memo,) = _memo_dir().glob("*.memo")
    with sqlite3.connect(memo) as conn:
        paths = {p for (p,) in conn.execute("SELECT path FROM files")}
    assert "docs/guide.md" not in paths and "src/app.py" in paths


@pytest.mark.parametrize("damage", ["garbage file", "code object", "wrong shape", "bad stamp"])
def test_a_damaged_memo_is_read_past(tmp_path, reads, settled, damage):
    repo = make_repo(tmp_path)
    first, _ = _pack(tmp_path, repo, "a.xml")
    n = len(reads)
    (memo,) = _memo_dir().glob("*.memo")
    if damage == "garbage file":
        memo.write_bytes(b"not a database" * 100)
    else:
        blob = {"code object": marshal.dumps(compile("1", "x", "eval")),
                "wrong shape": marshal.dumps([("d", ("only", "three", "fields"))]),
                "bad stamp": None}[damage]
        with sqlite3.connect(memo) as conn:
            if blob is None:
                conn.execute("UPDATE files SET size = 'x'")
            else:
                conn.execute("UPDATE files SET outputs = ?", (blob,))
    reads.clear()
    second, _ = _pack(tmp_path, repo, "b.xml")
    assert second == first and len(reads) == n  # everything read again, nothing lost


def test_another_tokenizer_or_option_is_another_memo(tmp_path, reads, settled):
    repo = make_repo(tmp_path)
    _pack(tmp_path, repo, "a.xml")
    reads.clear()
    out, man = tmp_path / "o.xml", tmp_path / "o.json"
    pack(PackInput([str(repo)], tokenizer="o200k", out=str(out), manifest=str(man)))
    assert reads  # counted again with its own tokenizer
    assert len(list(_memo_dir().glob("*.memo"))) == 2


def test_an_archive_member_is_never_remembered(tmp_path, reads, settled):
    import zipfile

    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as zf:
        zf.writestr("notes.txt", "archived notes\n")
    _pack(tmp_path, tmp_path / "docs.zip", "a.xml")
    reads.clear()
    text, _ = _pack(tmp_path, tmp_path / "docs.zip", "b.xml")
    assert reads == ["notes.txt"] and "archived notes" in text


def test_detect_secrets_is_imported_without_requests():
    code = ("import sys\n"
            "from ingest.secrets import scan\n"
            "assert 'requests' not in sys.modules\n"
            "found = scan('k = \"AKIAIOSFODNN7EXAMPLE\"\\n', 'x.py').findings\n"
            "assert [f.kind for f in found] == ['aws-access-key'], found\n"
            "import detect_secrets.plugins.base as base\n"
            "assert base.requests.exceptions.RequestException.__module__ == 'requests.exceptions'\n"
            "import requests\n"
            "assert callable(requests.get) and 'requests' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr


def test_a_cache_folder_that_cannot_be_written_only_costs_the_memo(tmp_path, reads, settled):
    repo = make_repo(tmp_path)
    memo_dir = _memo_dir()
    memo_dir.parent.mkdir(parents=True, exist_ok=True)
    memo_dir.write_text("a file where the memo folder would be\n")
    first, _ = _pack(tmp_path, repo, "a.xml")
    n = len(reads)
    reads.clear()
    second, _ = _pack(tmp_path, repo, "b.xml")
    assert second == first and len(reads) == n


def test_an_html_file_is_read_again_when_a_project_marker_appears(tmp_path, reads, settled):
    """An HTML file is a web page, or source code inside a project: its reading depends on the
    folders above it, so the memo never keeps it."""
    folder = tmp_path / "d"
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "page.html").write_text(
        "<html><head><title>Title</title></head><body><h1>Title</h1><p>Words.</p></body></html>")
    _pack(tmp_path, folder, "a.xml")
    (folder / "Makefile").write_text("all:\n\techo\n")
    reads.clear()
    text, manifest = _pack(tmp_path, folder, "b.xml")
    assert "site/page.html" in reads
    assert (text, manifest) == _fresh(tmp_path, folder, "c.xml")


def test_a_mails_skipped_attachment_stays_skipped_at_a_chunk_boundary(tmp_path, monkeypatch,
                                                                      settled):
    """A mail's documents may be counted before its skipped attachments are listed (a chunk
    fills): the memo still keeps them, so every pack skips the same files."""
    import io
    import zipfile
    from email.message import EmailMessage

    import ingest.counting

    monkeypatch.setattr(ingest.counting, "BATCH_CHARS", 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner.txt", "inside\n")
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "Q3", "a@example.org", "b@example.org"
    msg.set_content("The plan for Q3.\n")
    msg.add_attachment(buf.getvalue(), maintype="application", subtype="zip", filename="x.zip")
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "x.eml").write_bytes(bytes(msg))
    (folder / "notes.txt").write_text("notes\n")
    skipped = [sorted(s.path for s in pack(PackInput(
        [str(folder)], tokenizer="cl100k", out=str(tmp_path / f"{i}.xml"))).skipped)
        for i in range(3)]
    assert skipped[0] and skipped[0] == skipped[1] == skipped[2]


def test_bytes_from_another_file_than_the_one_listed_are_not_kept(tmp_path):
    """The stamp of the open file must be the one listed (a link retargeted, a folder swapped
    between listing and reading): else what was read is used but not remembered."""
    from ingest.documents import ProcessOptions
    from ingest.pipeline import _Memo, _read_one
    from ingest.types import Candidate

    f = tmp_path / "a.txt"
    f.write_text("text\n")
    listed = statmemo.stamp(f.stat())
    options = ProcessOptions(segments=False, symbols=False, injections=False)
    as_listed = _read_one(0, Candidate("a.txt", f, str(tmp_path), 5, (), listed), options, None,
                          _Memo(None))
    other = _read_one(0, Candidate("a.txt", f, str(tmp_path), 5, (), (5, 1, 1, 1, 1)), options,
                      None, _Memo(None))
    assert as_listed.settled and as_listed.document.text == "text\n"
    assert not other.settled and other.document.text == "text\n"


def test_a_damaged_memo_file_is_made_anew(tmp_path, reads, settled):
    repo = make_repo(tmp_path)
    _pack(tmp_path, repo, "a.xml")
    (memo,) = _memo_dir().glob("*.memo")
    memo.write_bytes(b"not a database" * 100)
    _pack(tmp_path, repo, "b.xml")  # reads everything, writes a new memo
    reads.clear()
    _pack(tmp_path, repo, "c.xml")
    assert reads == []


def test_a_process_that_packs_again_takes_the_memo_from_memory(tmp_path, reads, settled):
    """`pack --watch` keeps the memo, decoded, between its packs (packing.Resident): the file
    on disk is not needed, the packs are what packs without a memo give, and a pack that
    fails leaves the memo in memory as it was."""
    import shutil

    from app.services.packing import Resident

    repo = make_repo(tmp_path)
    resident = Resident()

    def packed(name: str) -> tuple[str, dict]:
        out, man = tmp_path / name, tmp_path / f"{name}.json"
        pack(PackInput([str(repo)], tokenizer="cl100k", out=str(out), manifest=str(man)),
             resident=resident)
        return out.read_text(), json.loads(man.read_text())

    first = packed("a.xml")
    n = len(reads)
    assert resident.memo is not None and any(resident.counts.values())
    shutil.rmtree(_memo_dir())  # from here on only the memory can say what is unchanged
    reads.clear()
    assert packed("b.xml") == first and reads == []
    assert packed("c.xml") == first and reads == []  # taken back twice: no row was changed

    with pytest.raises(IngestError, match="is a folder"):
        pack(PackInput([str(repo)], tokenizer="cl100k", out=str(tmp_path)), resident=resident)
    (repo / "src" / "app.py").write_text("def changed():\n    return 'new text'\n")
    (repo / "docs" / "guide.md").unlink()
    reads.clear()
    text, manifest = packed("d.xml")
    assert reads == ["src/app.py"] and "new text" in text
    assert "docs/guide.md" not in {s["path"] for s in manifest["sources"]}
    reads.clear()
    assert (text, manifest) == _fresh_of(tmp_path, repo, "e.xml")
    assert len(reads) == n - 1


def _fresh_of(tmp_path: Path, target: Path, name: str) -> tuple[str, dict]:
    """A pack with no memo, in memory or on disk."""
    import shutil

    shutil.rmtree(_memo_dir(), ignore_errors=True)
    return _pack(tmp_path, target, name)


def _rows() -> dict[str, tuple]:
    """The memo's rows by path shown: (path, stamp)."""
    (memo,) = _memo_dir().glob("*.memo")
    with closing(sqlite3.connect(memo)) as conn:
        return {r[1]: r[1:7] for r in conn.execute("SELECT * FROM files")}


def test_a_large_pack_writes_its_rows_as_it_goes(tmp_path, reads, settled, monkeypatch):
    """Rows are written in batches (a large pack holds one batch, not all of them). A row is
    true of its file's stamp whether or not its pack gets written: a pack that fails after
    writing some keeps what it read, and the next one packs what a fresh pack does."""
    monkeypatch.setattr(statmemo, "FLUSH_CHARS", 1)  # every row its own batch
    repo = make_repo(tmp_path)
    _pack(tmp_path, repo, "a.xml")
    kept = _rows()
    assert len(kept) >= 4

    (repo / "src" / "app.py").write_text("def changed():\n    return 'new text'\n")
    (repo / "docs" / "guide.md").unlink()
    (repo / "docs" / "more.md").write_text("# More\n\nAnother page.\n")
    reads.clear()
    with pytest.raises(IngestError, match="is a folder"):  # fails once the rows are written
        pack(PackInput([str(repo)], tokenizer="cl100k", out=str(tmp_path)))
    assert sorted(reads) == ["docs/more.md", "src/app.py"]
    after = _rows()
    assert after["src/app.py"] != kept["src/app.py"] and "docs/more.md" in after
    assert "docs/guide.md" in after  # files gone are dropped by a pack that is written
    reads.clear()
    text, manifest = _pack(tmp_path, repo, "b.xml")
    assert reads == [] and "new text" in text and "docs/guide.md" not in _rows()
    assert (text, manifest) == _fresh_of(tmp_path, repo, "c.xml")


def test_past_the_limits_the_memo_is_not_held_or_not_kept(tmp_path, reads, settled,
                                                          monkeypatch):
    from app.services.packing import Resident

    repo = make_repo(tmp_path)
    resident = Resident()
    monkeypatch.setattr(statmemo, "MAX_HELD_CHARS", 10)  # too large to hold between packs
    pack(PackInput([str(repo)], tokenizer="cl100k", out=str(tmp_path / "a.xml")),
         resident=resident)
    assert resident.memo is None
    reads.clear()
    pack(PackInput([str(repo)], tokenizer="cl100k", out=str(tmp_path / "b.xml")),
         resident=resident)
    assert reads == []  # the memo's file said it all
    monkeypatch.setattr(statmemo, "MAX_CHARS", 10)  # too large to keep at all
    (repo / "src" / "app.py").write_text("def changed():\n    return 1\n")
    _pack(tmp_path, repo, "c.xml")
    assert list(_memo_dir().glob("*.memo")) == []
