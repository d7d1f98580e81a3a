"""Memory at a million files (issue 23, item 8): what an ingest holds per file between reading
and writing is small. The documents wait in a staging file, not a list; token counts come back
a chunk at a time; the collected files are compact tuples until each is read. The rows, the
version hash and the report are the same as ever."""

from __future__ import annotations

import tracemalloc
import weakref
from pathlib import Path

from app.services import catalog, ingesting, snapshot, versions
from app.services.tokencache import tokenizer as tokenizer_for
from ingest import counting, pipeline
from ingest.collect import CollectOptions, collect
from ingest.counting import count_stream
from ingest.tokenizers import load_tokenizer
from ingest.types import Document, Segment


def _folder(root: Path, n: int, prefix: str = "f") -> Path:
    for i in range(n):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"{prefix}{i:03d}.txt").write_text(f"note {i}: caf\u00e9\n")
    return root


def test_read_documents_wait_on_disk_not_in_memory(tmp_path, monkeypatch):
    """At any time only a chunk of documents is alive: the rest are in the staging file."""
    live: list[weakref.ref] = []  # a Document is not hashable: no WeakSet
    most = []
    process, append = pipeline.process, pipeline.DocumentSpool.append

    def tracked(*args, **kwargs):
        doc = process(*args, **kwargs)
        if isinstance(doc, Document):
            live.append(weakref.ref(doc))
        return doc

    def spy(self, doc):
        most.append(sum(r() is not None for r in live))
        append(self, doc)

    monkeypatch.setattr(pipeline, "process", tracked)
    monkeypatch.setattr(pipeline.DocumentSpool, "append", spy)
    monkeypatch.setattr(counting, "CHUNK_DOCS", 4)
    report = ingesting.ingest([_folder(tmp_path / "src", 30)], "spooled")
    assert report.count("added") == 30 and len(most) == 30
    assert max(most) <= 4 + 1  # a chunk being counted, and the one being read


def test_counts_stream_in_order_and_match_the_tokenizer(monkeypatch):
    monkeypatch.setattr(counting, "CHUNK_DOCS", 2)
    tok = load_tokenizer("cl100k")
    texts = [f"line {i} " * (i + 1) for i in range(7)]
    read: list[int] = []

    def docs():
        for i, text in enumerate(texts):
            read.append(i)
            yield Document(f"f{i}.txt", "/r", "text", None, str(i), len(text),
                           [Segment(0, text, "lines", 1, 1, extra_tokens=i)])

    out = count_stream(docs(), tok, None, workers=1)
    first = next(out)
    assert len(read) <= 2  # the first chunk's counts came back before the rest was read
    got = [first, *out]
    assert [d.path for d in got] == [f"f{i}.txt" for i in range(7)]
    assert [d.tokens for d in got] == [tok.count(t) + i for i, t in enumerate(texts)]


def _held_without_interning() -> int:
    """Bytes traced now, less the interned-strings table growing (pathlib interns path parts:
    after other tests interned many strings, the table's one-time resize is MBs, not ours)."""
    import pathlib

    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, pathlib.__file__, 71)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_collected_files_are_compact_and_read_back_whole(tmp_path):
    src = _folder(tmp_path / "src", 600)
    (src / "d0" / "caf\u00e9 \u00e9t\u00e9.md").write_text("# title\n")
    tracemalloc.start()
    try:
        with collect([src], CollectOptions()) as found:
            held = _held_without_interning()
            cands = list(found.candidates)
            assert len(cands) == len(found.candidates) == 601
            assert all(c.location == src / c.path and c.location.is_file() for c in cands)
            assert all(c.root == str(src) and c.size == c.location.stat().st_size
                       for c in cands)
            found.candidates[0] = None  # read: let go
    finally:
        tracemalloc.stop()
    assert held / 601 < 300  # a Candidate with its Path took ~560 bytes


def test_inputs_out_of_path_order_give_the_same_corpus(tmp_path):
    """Two inputs, the later one first in path order: the staging file is read back sorted,
    so positions, the version and the report are those of an in-memory ingest."""
    b = _folder(tmp_path / "b", 5, "b")
    a = _folder(tmp_path / "a", 5, "a")
    # a NUL past the binary sniff is made portable: the staging file is written again
    lines = "".join(f"line {i} of a long enough note\n" for i in range(400)).encode()
    (a / "nul.txt").write_bytes(lines + b"before\x00after\n")
    report = ingesting.ingest([b, a], "order")
    _, docs = snapshot.load_documents("order")
    assert [d.path for d in docs] == sorted(d.path for d in docs)
    assert [f.path for f in report.files] == sorted(f.path for f in report.files)
    assert report.version_hash == versions.version_of_sources(
        [(d.path, d.sha256) for d in docs], tokenizer_for("cl100k").fingerprint)
    assert report.total_tokens == sum(d.tokens for d in docs) == sum(
        f.tokens for f in report.files)
    assert [f.status for f in report.files if f.path.endswith("nul.txt")] == ["added"]
    nul = next(d for d in docs if d.path.endswith("nul.txt"))
    assert "\x00" not in nul.text and "\ufffd" in nul.text
    # a re-ingest with one file gone and one changed: the report names both, nothing else
    (b / "d0" / "b000.txt").unlink()
    (a / "d1" / "a001.txt").write_text("changed\n")
    again = ingesting.ingest([b, a], "order")
    assert {f.path: f.status for f in again.files if f.status != "unchanged"} == {
        "b/d0/b000.txt": "removed", "a/d1/a001.txt": "changed"}


def test_a_full_staging_disk_is_one_line_and_stores_nothing(tmp_path, monkeypatch):
    """The staging file on a full disk (/dev/full: every write is ENOSPC) ends the ingest with
    the IngestError the CLI prints as one line, before anything reaches the database."""
    import pytest

    from ingest.types import IngestError

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"big{i}.txt").write_text(f"line {i} of a long note\n" * 4000)
    monkeypatch.setattr(pipeline.tempfile, "TemporaryFile",
                        lambda **_: open("/dev/full", "w+b"))  # noqa: SIM115
    with pytest.raises(IngestError, match="staging file .* could not be written"):
        ingesting.ingest([folder], "full-disk", tokenizer="cl100k")
    assert "full-disk" not in [c.name for c in catalog.list_corpora()]
