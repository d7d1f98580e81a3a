"""Lexical retrieval over a corpus's segments with bm25s, built once per corpus version.

Code needs its own terms: `load_tokenizer` and `PackResult` are searched by their parts (`load`,
`tokenizer`, `packresult`, `result`) and as whole identifiers (`load_tokenizer`), whose rarity
BM25 then rewards: in 86M tokens `default_max_retries` occurs in a handful of segments while
`default`, `max` and `retries` occur everywhere. A segment's path counts as part of its text, so
"where is the packer" finds `ingest/pack.py`. The index is saved next to the database
(numpy arrays, loaded memory-mapped), so a question pays only for loading and searching it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

WORDS = re.compile(r"[a-z]{2,}|[0-9]+")  # on lower-cased text: words and snake_case parts
HUMPS = re.compile(r"[a-z0-9][A-Z][a-z]+")  # inner camelCase parts, with the character before
#: snake_case identifiers, matched whole too (camelCase ones already are: WORDS on lower case)
COMPOUND = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+\b")
#: bumped when what `terms` yields changes: an index of another format is rebuilt
FORMAT = 2
_STOPWORDS = """a an and are as at be but by for from has have he her his i if in into is it
its me my not of on or our she so that the their them then there these they this to was we were
what when where which who why will with you your how does do did can could should would about"""
STOP = frozenset(_STOPWORDS.split())


def terms(text: str) -> list[str]:
    """Lower-cased words, snake_case parts, inner camelCase parts (`PackResult` gives
    `packresult` and `result`) and snake_case identifiers whole (`load_tokenizer`): three
    regex passes in C."""
    return (WORDS.findall(text.lower()) + [h[1:].lower() for h in HUMPS.findall(text)]
            + [c.lower().strip("_") for c in COMPOUND.findall(text)])


def query_terms(text: str) -> list[str]:
    """A question's terms: as `terms`, without the words every question has."""
    return [t for t in terms(text) if t not in STOP]


@dataclass(frozen=True)
class Hit:
    segment: int  # the caller's segment id
    score: float


class SegmentIndex:
    """bm25s over (segment id, path, text); `search` returns the caller's ids."""

    def __init__(self, retriever, ids: list[int]):
        self._retriever = retriever
        self.ids = ids

    @classmethod
    def build(cls, segments: Iterable[tuple[int, str, str]]) -> SegmentIndex:
        """Index (segment id, path, text) rows as they stream in: each segment's terms become
        4-byte ids at once (a list of Python strings per segment took ~3 GB at 77M tokens),
        so memory grows with the corpus's terms, not with its text."""
        import bm25s

        ids: list[int] = []
        corpus: list[array] = []
        vocab: dict[str, int] = {}
        for sid, path, text in segments:
            ids.append(sid)
            corpus.append(array("I", [vocab.setdefault(t, len(vocab))
                                      for t in terms(path) + terms(text)]))
        retriever = bm25s.BM25()
        if corpus:
            vocab.setdefault("", len(vocab))  # bm25s scores term-less queries against it
            retriever.index((corpus, vocab), create_empty_token=False, show_progress=False)
        return cls(retriever, ids)

    def save(self, folder: Path) -> None:
        """Write atomically: a half-written index is never loaded."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            if self.ids:
                self._retriever.save(tmp, show_progress=False)
            (tmp / "segments.json").write_text(json.dumps({"format": FORMAT, "ids": self.ids}))
            # Never delete inside the live folder (a writer saving the same index at the same
            # moment could be renaming its own into place): move what is there aside in one
            # rename, then put ours in place; whoever renames last wins, each whole.
            for _ in range(20):
                try:
                    os.rename(tmp, folder)
                    return
                except OSError:
                    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(folder, aside)
                    shutil.rmtree(aside, ignore_errors=True)
            if not (folder / "segments.json").exists():
                raise OSError(f"cannot save the retrieval index in {folder}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> SegmentIndex | None:
        import bm25s

        try:
            meta = json.loads((folder / "segments.json").read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                return None  # an older format: the caller rebuilds it
            ids = meta["ids"]
            retriever = bm25s.BM25.load(folder, mmap=True, show_progress=False) if ids else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return cls(retriever, ids)

    def search(self, query: str, k: int = 100) -> list[Hit]:
        q = query_terms(query)
        if not q or not self.ids or self._retriever is None:
            return []
        vocab = getattr(self._retriever, "vocab_dict", None) or {}
        q = [t for t in q if t in vocab]
        if not q:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._retriever.retrieve([q], k=k, show_progress=False, n_threads=1)
        return [Hit(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True)
                if s > 0]
