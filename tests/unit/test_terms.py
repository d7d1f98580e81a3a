"""Segments' terms extracted in worker processes (ingest/terms.py): in order, merged per segment
as a one-process build merges them, and a worker's failure is the build's, with nothing left."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from array import array
from collections import Counter

import numpy as np
import pytest

from ingest import terms as terms_module
from ingest.retrieval import SegmentIndex
from ingest.terms import TermBatches, batch_terms, by_segment, terms


def test_by_segment_is_each_segments_unique_ids_and_summed_counts():
    rng = np.random.default_rng(7)
    segments = [rng.integers(0, 50, size=n) for n in (5, 0, 12, 1, 30, 0)]
    pairs = [Counter(seg.tolist()) for seg in segments]
    # two words of one stem give one id twice in a segment's pairs: split each count in two
    ids, counts, distinct = [], [], []
    for seen in pairs:
        n = 0
        for term, count in seen.items():
            for part in ((count,) if count == 1 else (1, count - 1)):
                ids.append(term)
                counts.append(part)
                n += 1
        distinct.append(n)
    got_ids, got_counts, got_distinct, lengths = by_segment(
        np.array(ids, dtype=np.uint32), array("I", counts), array("I", distinct))
    at = 0
    for i, seg in enumerate(segments):
        unique, count = np.unique(seg, return_counts=True)
        assert got_distinct[i] == len(unique)
        assert np.array_equal(got_ids[at:at + len(unique)], unique)
        assert np.array_equal(got_counts[at:at + len(unique)], count)
        assert lengths[i] == len(seg)
        at += len(unique)
    assert at == len(got_ids)


def test_a_batch_lists_each_term_once_in_order_of_first_occurrence():
    got = batch_terms([("a/load_tokenizer.py", "load the tokenizer"), ("b.py", "tokenizer x2")])
    stream = terms("a/load_tokenizer.py") + terms("load the tokenizer")
    stream += terms("b.py") + terms("tokenizer x2")
    assert got.words == list(dict.fromkeys(stream))
    first = Counter(terms("a/load_tokenizer.py") + terms("load the tokenizer"))
    assert [got.words[i] for i in got.which[:got.distinct[0]]] == list(first)
    assert list(got.counts[:got.distinct[0]]) == list(first.values())
    assert len(got.distinct) == 2 and sum(got.distinct) == len(got.which) == len(got.counts)


def test_items_come_back_in_the_order_given_from_a_pool(monkeypatch):
    monkeypatch.setattr(terms_module, "POOL_AFTER_CHARS", 0)
    monkeypatch.setattr(terms_module, "BATCH_CHARS", 1)  # each segment a batch of its own
    monkeypatch.setattr(terms_module, "SMALL_BATCH_CHARS", 0)
    out = []
    with TermBatches(2) as batches:
        for i in range(40):
            if i % 7 == 3:
                batches.put(("kept", i))
            else:
                batches.add(f"f{i}.py", f"word{i} " * (i + 1))
            out.extend(batches.ready())
        assert batches._pool is not None  # the pool really ran
        out.extend(batches.finish())
    assert batches._pool is None
    kinds = [item if isinstance(item, tuple) else item.words for item in out]
    assert kinds == [("kept", i) if i % 7 == 3 else list(dict.fromkeys(
        terms(f"f{i}.py") + terms(f"word{i} " * (i + 1)))) for i in range(40)]


def test_a_workers_failure_fails_the_build_and_leaves_no_work_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(terms_module, "POOL_AFTER_CHARS", 0)
    monkeypatch.setattr(terms_module, "BATCH_CHARS", 10)
    monkeypatch.setattr(terms_module, "SMALL_BATCH_CHARS", 0)
    rows = [(i, f"f{i}.py", "some words here") for i in range(20)]
    rows[12] = (12, None, "a path that is not text fails in the worker")
    with pytest.raises(AttributeError):
        SegmentIndex.build(iter(rows), workdir=tmp_path, workers=2)
    assert not any(tmp_path.iterdir())


def _dies_in_a_worker(rows):
    if multiprocessing.parent_process() is not None:
        os._exit(1)  # as the kernel's out-of-memory killer would end it
    return batch_terms(rows)


def test_a_killed_worker_leaves_its_batches_to_this_process(monkeypatch):
    monkeypatch.setattr(terms_module, "POOL_AFTER_CHARS", 0)
    monkeypatch.setattr(terms_module, "BATCH_CHARS", 1)
    monkeypatch.setattr(terms_module, "SMALL_BATCH_CHARS", 0)
    monkeypatch.setattr(terms_module, "batch_terms", _dies_in_a_worker)
    rows = [(f"f{i}.py", f"word{i} other{i % 3}") for i in range(12)]
    with TermBatches(2) as batches:
        out = []
        for row in rows:
            batches.add(*row)
            out.extend(batches.ready())
        out.extend(batches.finish())
    assert [item.words for item in out] == [batch_terms([row]).words for row in rows]
    assert batches.workers == 1


def test_a_pool_found_broken_at_submit_leaves_the_batch_to_this_process(monkeypatch):
    monkeypatch.setattr(terms_module, "POOL_AFTER_CHARS", 0)
    monkeypatch.setattr(terms_module, "BATCH_CHARS", 1)
    monkeypatch.setattr(terms_module, "SMALL_BATCH_CHARS", 0)
    with TermBatches(2) as batches:
        batches.add("a.py", "first words")
        pool = batches._pool
        assert pool is not None
        for pid in list(pool._processes):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not pool._broken and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._broken
        batches.add("b.py", "second words")  # submit itself finds the pool broken
        out = list(batches.finish())
    assert [item.words for item in out] == [batch_terms([("a.py", "first words")]).words,
                                           batch_terms([("b.py", "second words")]).words]
