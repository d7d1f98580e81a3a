"""Reading and processing in worker processes gives exactly what one process gives: the same
documents (segments, symbols, flags, secrets redacted), skips and unchanged files, in order."""

from __future__ import annotations

import sqlite3

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
