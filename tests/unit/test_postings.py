"""The streamed BM25 matrix (ingest/postings.py) against bm25s's own build: the same arrays, to
the bit, on real text, in one column range or many; a failed build leaves nothing behind."""

from __future__ import annotations

import json
import sysconfig
from array import array
from pathlib import Path

import bm25s
import numpy as np
import pytest

from ingest import postings
from ingest import terms as terms_module
from ingest.retrieval import SegmentIndex, Stems, query_terms, terms


def _segments(limit: int = 300) -> list[tuple[int, str, str]]:
    """Real text: the standard library's json and email packages, cut into 40-line pieces."""
    root = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for path in sorted([*root.glob("json/*.py"), *root.glob("email/*.py")]):
        lines = path.read_text(encoding="utf-8").split("\n")
        for i in range(0, len(lines), 40):
            rows.append((len(rows) + 7, str(path.relative_to(root)), "\n".join(lines[i:i + 40])))
    rows.append((len(rows) + 7, "empty.txt", ""))  # a segment without terms
    return rows[:limit]


def _reference(rows) -> tuple[bm25s.BM25, dict[str, int]]:
    """bm25s's own index of the same terms, ids given as SegmentIndex.build gives them."""
    stems, vocab, corpus = Stems(), {}, []
    for _, path, text in rows:
        corpus.append([vocab.setdefault(stems.uncached(t), len(vocab))
                       for t in terms(path) + terms(text)])
    vocab.setdefault("", len(vocab))
    ref = bm25s.BM25()
    ref.index((corpus, vocab), create_empty_token=False, show_progress=False)
    return ref, vocab


@pytest.mark.parametrize(("range_pairs", "workers"), [(postings.RANGE_PAIRS, 1), (997, 1),
                                                      (997, 2)])
def test_the_streamed_matrix_is_bm25s_own(tmp_path, monkeypatch, range_pairs, workers):
    monkeypatch.setattr(postings, "RANGE_PAIRS", range_pairs)
    monkeypatch.setattr(postings, "READ_PAIRS", 1_500)  # several reads per range
    if workers > 1:  # the terms of 2 KB batches extracted in a pool from the start
        monkeypatch.setattr(terms_module, "POOL_AFTER_CHARS", 0)
        monkeypatch.setattr(terms_module, "BATCH_CHARS", 2_000)
        monkeypatch.setattr(terms_module, "SMALL_BATCH_CHARS", 0)
    rows = _segments()
    ref, vocab = _reference(rows)
    index = SegmentIndex.build(iter(rows), workdir=tmp_path, workers=workers)
    got = index._retriever
    assert got.vocab_dict == vocab
    for name in ("data", "indices", "indptr"):
        mine, theirs = np.asarray(got.scores[name]), np.asarray(ref.scores[name])
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), name
    assert got.scores["num_docs"] == ref.scores["num_docs"] == len(rows)
    for query in ("decode a json object", "email header parser", "zzz_not_there"):
        q = [t for t in terms(query) if t in vocab]
        if q:
            assert np.array_equal(got.get_scores(q), ref.get_scores(q))
    folder = tmp_path / "saved"
    index.save(folder)
    loaded = SegmentIndex.load(folder)
    assert loaded is not None and list(loaded.ids) == [r[0] for r in rows]
    assert loaded.search("decode a json object")[0] == index.search("decode a json object")[0]
    params = json.loads((folder / "params.index.json").read_text())
    assert params["num_docs"] == len(rows) and params["method"] == ref.method


def test_reused_terms_give_the_same_matrix(tmp_path):
    """A re-build that takes every segment's terms from the previous index (text None)."""
    rows = _segments(120)
    keys = array("q", range(len(rows)))
    first = SegmentIndex.build(iter(rows), keys=keys, workdir=tmp_path)
    first.save(tmp_path / "v1")
    loaded = SegmentIndex.load(tmp_path / "v1")
    reuse = loaded.reusable(tmp_path / "v1")
    assert reuse is not None and reuse.match({sid: i for i, (sid, _, _) in enumerate(rows)}) \
        == len(rows)
    again = SegmentIndex.build(iter((sid, path, None) for sid, path, _ in rows), reuse=reuse,
                               workdir=tmp_path)
    assert again.reused == len(rows)
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(np.asarray(again._retriever.scores[name]),
                              np.asarray(first._retriever.scores[name]))


def test_a_failed_build_leaves_no_files(tmp_path):
    def rows():
        yield from _segments(30)
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        SegmentIndex.build(rows(), workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_built_index_cleans_its_work_folder_once_let_go(tmp_path):
    import gc

    index = SegmentIndex.build(iter(_segments(20)), workdir=tmp_path)
    assert index.search("email message")
    del index
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_work_folders_of_builds_that_died_are_removed_live_ones_kept(tmp_path):
    import os
    import time

    from app.services.index import STALE_BUILD_S, _remove_stale_builds

    dead, live = tmp_path / ".index-build.dead", tmp_path / ".index-build.live"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "terms.ids.part").write_bytes(b"x")
    old = time.time() - STALE_BUILD_S - 60
    for path in (dead, dead / "terms.ids.part", live):
        os.utime(path, (old, old))  # the live build's folder is old, its file still written
    _remove_stale_builds(tmp_path)
    assert not dead.exists() and live.exists()


def test_a_saved_index_asks_its_vocabulary_term_by_term(tmp_path):
    """A question looks its terms up in the vocabulary's table, not in a parsed JSON of all of
    them: the same scores as bm25s's own load of the JSON."""
    from ingest.retrieval import TermIds

    rows = _segments(200)
    SegmentIndex.build(iter(rows), workdir=tmp_path).save(tmp_path / "saved")
    loaded = SegmentIndex.load(tmp_path / "saved")
    vocab = loaded._retriever.vocab_dict
    assert isinstance(vocab, TermIds)
    parsed = bm25s.BM25.load(tmp_path / "saved", mmap=True)
    assert dict(vocab.items()) == parsed.vocab_dict and len(vocab) == len(parsed.vocab_dict)
    assert "zzz_not_a_term" not in vocab and vocab.get("zzz_not_a_term", -1) == -1
    for query in ("decode a json object", "email header parser"):
        q = [t for t in query_terms(query, loaded.stems) if t in parsed.vocab_dict]
        assert np.array_equal(loaded.scores(query), parsed.get_scores(q))
    (tmp_path / "saved" / "vocab.sqlite").unlink()  # an index saved before the table: parsed
    again = SegmentIndex.load(tmp_path / "saved")
    assert isinstance(again._retriever.vocab_dict, dict)
    assert again.search("email header parser") == loaded.search("email header parser")


def test_a_damaged_saved_index_is_rebuilt_not_a_traceback(tmp_path):
    """A vocabulary table that is not a database: the index does not load (the caller builds
    it again); kept terms cut short: nothing is reused (a full build instead)."""
    rows = _segments(60)
    keys = array("q", range(len(rows)))
    SegmentIndex.build(iter(rows), keys=keys, workdir=tmp_path).save(tmp_path / "v1")
    loaded = SegmentIndex.load(tmp_path / "v1")
    terms_file = tmp_path / "v1" / "terms.ids.npy"
    terms_file.write_bytes(terms_file.read_bytes()[:-40])
    assert loaded.reusable(tmp_path / "v1") is None
    (tmp_path / "v1" / "vocab.sqlite").write_bytes(b"not a database" * 100)
    assert SegmentIndex.load(tmp_path / "v1") is None
