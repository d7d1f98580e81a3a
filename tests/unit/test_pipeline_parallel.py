"""Reading and processing in worker processes gives exactly what one process gives: the same
documents (segments, symbols, flags, secrets redacted), skips and unchanged files, in order."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import types
from concurrent.futures import ProcessPoolExecutor

import pytest
from helpers import make_code_repo

from ingest import pipeline
from ingest.counting import TokenCache
from ingest.pipeline import PipelineOptions, run_pipeline
from ingest.tokenizers import load_tokenizer


def _tree(root):
    make_code_repo(root, files=24)
    (root / "notes.md").write_text("# Notes\n\nAWS_KEY = \"AKIA" + "QWERTYUIOPLKJHGF\"\n")
    (root / "big.log").write_bytes(b"x" * 20_000_000)  # over the size limit: skipped
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    return root


def _view(result):
    return ([(d.path, d.tokens, d.flags, [(s.text, s.tokens) for s in d.segments], d.symbols)
             for d in result.documents], [(s.path, s.status, s.reason) for s in result.skipped],
            result.unchanged)


def test_workers_give_what_one_process_gives(tmp_path, monkeypatch):
    root = _tree(tmp_path / "repo")
    tok = load_tokenizer("cl100k")
    monkeypatch.setattr(pipeline, "PARALLEL_FILES", 2)  # parallel even for a small tree
    monkeypatch.setattr(pipeline, "UNSEEN_INLINE", 0)  # every new file to the workers
    one = run_pipeline([root], tok, PipelineOptions(workers=1))
    cache = TokenCache(tmp_path / "cache.db", tok.fingerprint)
    two = run_pipeline([root], tok, PipelineOptions(workers=2), cache=cache)
    assert _view(one) == _view(two)
    assert any(f.startswith("secret:") for d in two.documents for f in d.flags)
    assert not any("AKIA" in s.text for d in two.documents for s in d.segments)
    # the workers' content verdicts reached the parent's cache: a second run reuses them
    cache.flush()
    with sqlite3.connect(tmp_path / "cache.db") as db:
        assert db.execute("SELECT count(*) FROM verdicts").fetchone()[0] > 0
    known = {d.path: d.sha256 for d in two.documents}
    again = run_pipeline([root], tok, PipelineOptions(workers=2), known=known, cache=cache)
    assert again.documents == [] and set(again.unchanged) == set(known)


def test_a_rerun_after_one_change_reads_here_without_a_pool(tmp_path, monkeypatch):
    """What the cache has seen, and a few new files, are read in this process: a re-pack after
    one change starts no workers, and gives what one process gives."""
    root = _tree(tmp_path / "repo")
    tok = load_tokenizer("cl100k")
    monkeypatch.setattr(pipeline, "PARALLEL_FILES", 2)
    cache = TokenCache(tmp_path / "cache.db", tok.fingerprint)
    monkeypatch.setattr(pipeline, "UNSEEN_INLINE", 0)
    run_pipeline([root], tok, PipelineOptions(workers=2), cache=cache)  # cold: workers
    cache.flush()
    monkeypatch.setattr(pipeline, "UNSEEN_INLINE", 4)
    changed = next(p for p in sorted(root.rglob("*.py")))
    changed.write_text(changed.read_text() + "\n# changed\n")

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool started for a re-run after one change")

    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", no_pool)
    warm = run_pipeline([root], tok, PipelineOptions(workers=2), cache=cache)
    one = run_pipeline([root], tok, PipelineOptions(workers=1))
    assert _view(warm) == _view(one)
    # more new files than UNSEEN_INLINE: the rest go to workers
    for p in sorted(root.rglob("*.py"))[:8]:
        p.write_text(p.read_text() + "\n# changed again\n")
    with pytest.raises(AssertionError, match="a worker pool started"):
        run_pipeline([root], tok, PipelineOptions(workers=2), cache=cache)


def test_spawned_workers_do_not_run_a_streamlit_page_again(tmp_path, monkeypatch):
    """Under Streamlit, `__main__` is the page script being run; a spawned worker re-runs its
    parent's main by file, so each ingest worker would run the page (in AppTest, the page fails
    outside it and breaks the pool). The workers start with it hidden."""
    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", main)
    ctx = multiprocessing.get_context("spawn")

    def start_one(kept: bool) -> int:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            if kept:
                with pipeline._main_kept_from_workers(ctx):
                    future = pool.submit(os.getpid)
            else:
                future = pool.submit(os.getpid)
            return future.result(timeout=60)

    assert start_one(kept=True) > 0 and not marker.exists()
    assert sys.modules["__main__"] is main  # put back
    start_one(kept=False)  # the failure the guard prevents: the page ran in the worker
    assert marker.read_text() == "ran\n"
