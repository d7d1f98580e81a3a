"""Lexical retrieval over a corpus's segments with bm25s, built once per corpus version.

Code needs its own terms: `load_tokenizer` and `PackResult` are searched by their parts (`load`,
`tokenizer`, `packresult`, `result`) and as whole identifiers (`load_tokenizer`), whose rarity
BM25 then rewards: in 86M tokens `default_max_retries` occurs in a handful of segments while
`default`, `max` and `retries` occur everywhere. A segment's path counts as part of its text, so
"where is the packer" finds `ingest/pack.py`. The index is saved next to the database
(numpy arrays, loaded memory-mapped), so a question pays only for loading and searching it.
Sentence vectors (ingest.embeddings), when built, are saved with it: float16, one row per id,
with the model's name, so vectors of another model or recipe are never compared with a query.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: each segment's distinct term ids and counts (what a later version of the corpus reuses)
from ingest.postings import (
    NPY_HEADERS,
    TERM_COUNTS,
    TERM_IDS,
    TERM_OFFSETS,
    VOCAB_DB,
    Postings,
    write_vocab_db,
)
from ingest.terms import TermBatches, by_segment, terms

#: bumped when what `terms` yields, or how the index is saved, changes: an index of another
#: format is rebuilt (4: the ids in IDS, not in segments.json)
FORMAT = 4
IDS = "ids.npy"
VECTORS = "vectors.npy"
FILES, FILE_OF = "files.json", "files.of.npy"  # the corpus's paths; each segment's among them
#: what identifies each segment's text across versions (segment ids do not: SQLite reuses them)
TERM_KEYS = "terms.keys.npy"
EMBED_CHUNK = 512  # segments embedded at a time while streaming (bounds memory)
DENSE_FLOOR = 0.1  # cosine below which a segment is not a dense hit (unrelated text)
#: terms as written whose ids are remembered during a build (their stems are looked up once)
KNOWN_TERMS = 2_000_000
#: the files of bm25s's saved index
BM25_FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
              "vocab.index.json", "params.index.json")
_STOPWORDS = """a an and are as at be but by for from has have he her his i if in into is it
its me my not of on or our she so that the their them then there these they this to was we were
what when where which who why will with you your how does do did can could should would about"""
STOP = frozenset(_STOPWORDS.split())


class Stems:
    """Each term's index key: an English word by its Snowball stem (PyStemmer, in C), so
    "redirects", "redirected" and `redirect` meet and "connections" finds `connection`;
    identifiers whole (`timeout_keep_alive`) and numbers as they are. Cached per distinct
    term: a question's second look asks for the same few thousand terms again and again."""

    def __init__(self):
        import Stemmer

        self._stem = Stemmer.Stemmer("english").stemWord
        self._cache: dict[str, str] = {}

    def __call__(self, term: str) -> str:
        key = self._cache.get(term)
        if key is None:
            key = self.uncached(term)
            if len(self._cache) < 100_000:  # a question's and its candidates' terms
                self._cache[term] = key
        return key

    def uncached(self, term: str) -> str:
        """The key, not remembered (an index build keeps its own term -> id table)."""
        return self._stem(term) if term.isalpha() and len(term) > 3 else term


def query_terms(text: str, stems: Stems | None = None) -> list[str]:
    """A question's terms: as `terms`, without the words every question has; with `stems`,
    as the index keys them."""
    out = [t for t in terms(text) if t not in STOP]
    return [stems(t) for t in out] if stems else out


@dataclass(frozen=True)
class Hit:
    segment: int  # the caller's segment id
    score: float


class Embeds(Protocol):
    """What builds vectors (ingest.embeddings.Embedder): a name and L2-normalised rows."""

    name: str

    def embed(self, texts: list[str]) -> Any: ...


class _Vectors:
    """Segments' digests embedded EMBED_CHUNK at a time as they stream in."""

    def __init__(self, embedder: Embeds, progress: Callable[[int], None] | None):
        self.embedder, self.progress = embedder, progress
        self.pending: list[str] = []
        self.parts: list[Any] = []
        self.done = 0

    def add(self, path: str, text: str) -> None:
        from ingest.embeddings import digest

        self.pending.append(digest(path, text))
        if len(self.pending) >= EMBED_CHUNK:
            self.flush()

    def flush(self) -> None:
        import numpy as np

        if self.pending:
            self.parts.append(np.asarray(self.embedder.embed(self.pending), dtype=np.float16))
            self.done += len(self.pending)
            self.pending = []
            if self.progress:
                self.progress(self.done)

    def finish(self, dim: int):
        import numpy as np

        self.flush()
        return np.concatenate(self.parts) if self.parts else np.zeros((0, dim), np.float16)


class TermIds(Mapping):
    """A saved index's vocabulary (term -> id), asked term by term from its VOCAB_DB table: a
    question looks up a few thousand terms, where parsing the whole vocabulary cost 0.5 s at
    80M tokens and grows with the corpus's distinct terms."""

    def __init__(self, path: Path):
        self.path = path
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._conn.execute("SELECT id FROM vocab LIMIT 1").fetchall()  # damaged: fails at load
        self._seen: dict[str, int | None] = {}

    def get(self, term, default=None):
        if term not in self._seen:
            row = self._conn.execute("SELECT id FROM vocab WHERE term = ?",
                                     (term,)).fetchone() if isinstance(term, str) else None
            if len(self._seen) < 100_000:
                self._seen[term] = row[0] if row else None
            else:
                return row[0] if row else default
        found = self._seen[term]
        return default if found is None else found

    def __getitem__(self, term) -> int:
        found = self.get(term)
        if found is None:
            raise KeyError(term)
        return found

    def __contains__(self, term) -> bool:
        return self.get(term) is not None

    def __iter__(self) -> Iterator[str]:
        return (t for t, in self._conn.execute("SELECT term FROM vocab ORDER BY id"))

    def items(self):  # type: ignore[override]
        return self._conn.execute("SELECT term, id FROM vocab ORDER BY id")

    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM vocab").fetchone()[0]


def _npy(path: Path, **kwargs):
    import numpy as np

    with NPY_HEADERS:
        return np.load(path, **kwargs)


def _with_vocab(folder: Path):
    """bm25s's retriever saved in `folder`, memory-mapped, its vocabulary a TermIds when the
    folder has the table (else parsed whole, as bm25s saves it)."""
    import bm25s

    table = folder / VOCAB_DB
    with NPY_HEADERS:
        retriever = bm25s.BM25.load(folder, mmap=True, show_progress=False,
                                    load_vocab=not table.exists())
    if table.exists():
        retriever.vocab_dict = TermIds(table)
    return retriever


class Reusable:
    """What an earlier version's index lets the next one keep: the terms of each segment that
    is still there (as ids into that index's vocabulary) and, when of the same model, its
    vector. A re-ingest that changed a few files then reads and splits only their segments:
    the terms are most of an index build (3.3 s of 4.7 s for the standard library) and
    embedding all of it (minutes per 1M tokens)."""

    def __init__(self, folder: Path, ids: list[int], vocab: dict[str, int], vectors=None):

        keys = _npy(folder / TERM_KEYS)
        if len(keys) != len(ids):
            raise ValueError("the saved keys do not match the index's segments")
        self.by_key = {int(k): i for i, k in enumerate(keys)}
        self.rows: dict[int, int] = {}  # this build's segment id -> row of the earlier index
        self.vocab = vocab
        # read with pread, not memory-mapped: a mapping's pages count in the build's memory
        # as they are read (1.6 GB of terms at a billion tokens: a re-ingest peaked at 3.2 GB)
        self.term_ids = _Column(folder / TERM_IDS)
        self.counts = _Column(folder / TERM_COUNTS)
        self.offsets = _npy(folder / TERM_OFFSETS)
        if len(self.offsets) != len(ids) + 1 or len(self.term_ids) != len(self.counts):
            raise ValueError("the saved terms do not match the index's segments")
        self.vectors = vectors

    def match(self, keys: dict[int, int]) -> int:
        """Bind this build's segments (segment id -> content key) to the earlier rows with the
        same content; returns how many match."""
        self.rows = {sid: self.by_key[k] for sid, k in keys.items() if k in self.by_key}
        return len(self.rows)

    def terms(self, sid: int):
        """Segment `sid`'s distinct term ids (ascending) and their counts."""
        i = self.rows[sid]
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.term_ids[a:b], self.counts[a:b]

    def vector(self, sid: int):
        return None if self.vectors is None else self.vectors[self.rows[sid]]


class _Column:
    """A one-dimensional .npy file whose slices are read with pread (nothing mapped, nothing
    held): `column[a:b]`."""

    def __init__(self, path: Path):
        import numpy as np

        with path.open("rb") as fh, NPY_HEADERS:
            np.lib.format.read_magic(fh)
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            self.start = fh.tell()
        if len(shape) != 1 or fortran:
            raise ValueError(f"{path.name}: not a one-dimensional array")
        self.dtype, self.length = np.dtype(dtype), shape[0]
        if path.stat().st_size < self.start + self.length * self.dtype.itemsize:
            raise ValueError(f"{path.name}: shorter than its header says")
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, span: slice):
        import numpy as np

        a, b, _ = span.indices(self.length)
        size = self.dtype.itemsize
        data = os.pread(self._fd, (b - a) * size, self.start + a * size) if b > a else b""
        if len(data) != max(b - a, 0) * size:
            raise ValueError("the saved terms are shorter than their header says")
        return np.frombuffer(data, dtype=self.dtype)


def embed_segments(segments: Iterable[tuple[int, str, str]], embedder: Embeds,
                   progress: Callable[[int], None] | None = None, dim: int = 384):
    """(ids, float16 vectors) of (segment id, path, text) rows, embedded as they stream in."""
    out = _Vectors(embedder, progress)
    ids = []
    for sid, path, text in segments:
        ids.append(sid)
        out.add(path, text)
    return ids, out.finish(dim)


class SegmentIndex:
    """bm25s over (segment id, path, text), and optionally their sentence vectors; `search` and
    `dense_search` return the caller's ids."""

    def __init__(self, retriever, ids, vectors=None, vectors_model: str | None = None,
                 vectors_problem: str | None = None, built: Path | None = None,
                 files: list[str] | None = None, file_of=None):
        self._retriever = retriever
        self._stems: Stems | None = None
        self._scored: tuple[Any, Any] | None = None  # the last query's terms and scores
        #: the corpus's files in corpus order, and each segment's file (an index into them):
        #: what a search scoped to some files masks by
        self.files = files or []
        self.file_of = file_of
        #: where a build wrote the matrix and each segment's terms (`save` moves them)
        self._built = built
        self._keys: list[int] | None = None  # their content keys (ingest.retrieval.TERM_KEYS)
        self.reused = 0  # segments whose terms came from an earlier version
        self.ids = ids
        self.vectors = vectors  # float16 (len(ids), dim), memory-mapped when loaded
        self.vectors_model = vectors_model
        #: why vectors asked for at load are not there: "missing", "of another model ..."
        self.vectors_problem = vectors_problem

    @classmethod
    def build(cls, segments: Iterable[tuple[int, str, str | None]],
              embedder: Embeds | None = None, progress: Callable[[int], None] | None = None,
              reuse: Reusable | None = None, keys: list[int] | None = None,
              workdir: Path | None = None, workers: int = 1) -> SegmentIndex:
        """Index (segment id, path, text) rows as they stream in: each segment's terms become
        ids and go to disk at once with their counts (ingest.postings), so memory grows with
        the corpus's distinct terms and its segment count (a few bytes each), not with its
        text. A row whose text is None takes its terms (and vector) from `reuse`, an earlier
        version's index. With `embedder`, each new segment's digest is embedded too,
        EMBED_CHUNK at a time (`progress(segments done)`). `keys` (each segment's content key,
        filled while the rows stream) are saved so that a later version can reuse this one's
        terms. The matrix is written in `workdir` (a temporary folder; best on the index's own
        file system, so `save` moves it). With `workers` > 1, a big build's terms are
        extracted in that many processes (ingest.terms); the index is the same."""
        import bm25s

        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".index-build.", dir=workdir))
        try:
            postings = Postings(work)
            ids = array("q")
            vocab: dict[str, int] = dict(reuse.vocab.items()) if reuse else {}
            stems = Stems()
            known: dict[str, int] = {}  # a term as written -> its key's id (stemmed once)

            def key(term: str) -> int:
                if len(known) >= KNOWN_TERMS:  # identifiers without end: stem them again
                    known.clear()
                i = known[term] = vocab.setdefault(stems.uncached(term), len(vocab))
                return i

            files: list[str] = []
            file_of = array("i")  # each segment's file, an index into `files`
            vectors = _Vectors(embedder, progress) if embedder is not None else None
            kept: dict[int, Any] = {}  # position -> reused vector
            reused = 0

            def store(item) -> None:  # a batch's terms, or a reused segment's (ids, counts)
                if isinstance(item, tuple):
                    postings.add_counted(*item)
                    return
                import numpy as np

                mapped = np.fromiter((known[t] if t in known else key(t) for t in item.words),
                                     dtype=np.uint32, count=len(item.words))
                postings.add_batch(*by_segment(
                    mapped[np.frombuffer(item.which, dtype=np.uint32)], item.counts,
                    item.distinct))

            try:
                with TermBatches(workers) as batches:
                    for sid, path, text in segments:
                        if not files or files[-1] != path:
                            files.append(path)
                        file_of.append(len(files) - 1)
                        if text is None:
                            assert reuse is not None
                            batches.put(reuse.terms(sid))
                            if vectors is not None:
                                kept[len(ids)] = reuse.vector(sid)
                            reused += 1
                        else:
                            batches.add(path, text)
                            if vectors is not None:
                                vectors.add(path, text)
                        ids.append(sid)
                        for item in batches.ready():
                            store(item)
                    for item in batches.finish():
                        store(item)
            except BaseException:
                postings.abandon()
                raise
            retriever = bm25s.BM25()
            if ids:
                vocab.setdefault("", len(vocab))  # bm25s scores term-less queries against it
                postings.write_bm25(vocab, _params(retriever))
                retriever = _with_vocab(work)
            else:
                postings.close()
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        index = cls(retriever, ids, built=work, files=files, file_of=file_of)
        weakref.finalize(index, shutil.rmtree, work, True)
        index.reused, index._keys = reused, keys
        if vectors is not None and embedder is not None:
            new = vectors.finish(getattr(embedder, "dim", 384))
            index.vectors, index.vectors_model = _interleave(new, kept, len(ids)), embedder.name
        return index

    def reusable(self, folder: Path, vectors_model: str | None = None) -> Reusable | None:
        """What a next version can keep of this saved index (None: nothing, e.g. an index
        saved before terms were kept)."""
        vocab = getattr(self._retriever, "vocab_dict", None)
        if not self.ids or not isinstance(vocab, Mapping):
            return None
        try:
            vectors = None
            if vectors_model:
                meta = json.loads((folder / "segments.json").read_text())
                vectors, _ = _load_vectors(folder, meta, vectors_model, len(self.ids))
            return Reusable(folder, self.ids, vocab, vectors)
        except (OSError, ValueError):
            return None

    def with_vectors(self, vectors, model: str) -> SegmentIndex:
        """This index with `vectors` (one row per id, in `ids` order) of `model`."""
        if len(vectors) != len(self.ids):
            raise ValueError(f"{len(vectors)} vectors for {len(self.ids)} segments")
        return SegmentIndex(self._retriever, self.ids, vectors, model, files=self.files,
                            file_of=self.file_of)

    def save(self, folder: Path) -> None:
        """Write atomically: a half-written index is never loaded."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        import numpy as np

        try:
            if self.ids and self._built is not None:  # a build's files: moved (or copied)
                for name in (*BM25_FILES, VOCAB_DB, TERM_IDS, TERM_COUNTS, TERM_OFFSETS):
                    if (self._built / name).exists():
                        _move_or_copy(self._built / name, tmp / name)
            elif self.ids:  # a loaded index, saved again (with vectors): its vocabulary whole
                vocab = self._retriever.vocab_dict
                if isinstance(vocab, TermIds):
                    self._retriever.vocab_dict = dict(vocab.items())
                self._retriever.save(tmp, show_progress=False)
                write_vocab_db(tmp / VOCAB_DB, self._retriever.vocab_dict)
                self._retriever.vocab_dict = vocab
            if self._keys is not None and len(self._keys) == len(self.ids) \
                    and (tmp / TERM_IDS).exists():
                np.save(tmp / TERM_KEYS, np.asarray(self._keys, dtype=np.int64))
            else:
                for name in (TERM_IDS, TERM_COUNTS, TERM_OFFSETS):
                    (tmp / name).unlink(missing_ok=True)
            np.save(tmp / IDS, np.asarray(self.ids, dtype=np.int64))
            meta: dict = {"format": FORMAT, "segments": len(self.ids)}
            if self.file_of is not None and len(self.file_of) == len(self.ids):
                np.save(tmp / FILE_OF, np.asarray(self.file_of, dtype=np.int32))
                (tmp / FILES).write_text(json.dumps(self.files))
            if self.vectors is not None and self.vectors_model:
                np.save(tmp / VECTORS, np.asarray(self.vectors, dtype=np.float16))
                meta["vectors"] = {"model": self.vectors_model, "dtype": "float16",
                                   "rows": len(self.vectors), "dim": int(self.vectors.shape[1])}
            (tmp / "segments.json").write_text(json.dumps(meta))
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
    def load(cls, folder: Path, vectors_model: str | None = None) -> SegmentIndex | None:
        """The saved index, or None (missing, damaged, of another format: the caller rebuilds
        it). With `vectors_model`, its vectors too when they are that model's and whole;
        otherwise `vectors_problem` says why not (the lexical index is still good)."""

        try:
            meta = json.loads((folder / "segments.json").read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                return None  # an older format: the caller rebuilds it
            ids = _load_ids(folder / IDS, meta["segments"])
            retriever = _with_vocab(folder) if ids else None
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
            return None
        index = cls(retriever, ids)
        if ids:  # the file table scoped searches need: without it, the caller rebuilds
            try:
                import numpy as np

                file_of = _npy(folder / FILE_OF, mmap_mode="r")
                files = json.loads((folder / FILES).read_text())
            except (OSError, ValueError):
                return None
            if len(file_of) != len(ids) or not isinstance(files, list) \
                    or (len(file_of) and int(np.max(file_of)) >= len(files)):
                return None
            index.files, index.file_of = files, file_of
        if vectors_model:
            index.vectors, index.vectors_problem = _load_vectors(folder, meta, vectors_model,
                                                                 len(ids))
            index.vectors_model = vectors_model if index.vectors is not None else None
        return index

    def dense_search(self, query_vector, k: int = 100, floor: float = DENSE_FLOOR) -> list[Hit]:
        """Segments by cosine similarity to an L2-normalised query vector, best first (those
        under `floor` left out); scanned in slices so a memory-mapped index stays on disk."""
        import numpy as np

        if self.vectors is None or not self.ids:
            return []
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        scores = np.empty(len(self.ids), dtype=np.float32)
        for i in range(0, len(self.ids), 65_536):
            scores[i:i + 65_536] = np.asarray(self.vectors[i:i + 65_536], np.float32) @ q
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(self.ids[int(t)], float(scores[t])) for t in top if scores[t] >= floor]

    def scores(self, query: str, extra: tuple[str, ...] = (), extra_weight: float = 1.0):
        """BM25 score of every segment for `query`, plus `extra_weight` times that of the
        `extra` terms (float32, one per id), or None when they hold no term the index knows.
        The last query's are kept: a search and a scoped search of the same question score
        once."""
        if not self.ids or self._retriever is None:
            return None
        vocab = self._vocab()
        q = tuple(t for t in query_terms(query, self.stems) if t in vocab)
        e = tuple(t for t in dict.fromkeys(self.stems(x) for x in extra)
                  if t in vocab and t not in q)
        if not q and not e:
            return None
        key = (q, e, extra_weight)
        if self._scored is None or self._scored[0] != key:
            ids = self._retriever.get_scores_from_ids
            scores = ids([vocab[t] for t in q]) if q else 0
            if e:
                scores = scores + extra_weight * ids([vocab[t] for t in e])
            self._scored = (key, scores)
        return self._scored[1]

    def _vocab(self) -> Mapping:
        """The retriever's vocabulary (never tested for truth: a TermIds counts its table)."""
        vocab = getattr(self._retriever, "vocab_dict", None)
        return vocab if vocab is not None else {}

    @property
    def stems(self) -> Stems:
        """How this index keys a term (see Stems)."""
        self._stems = self._stems or Stems()
        return self._stems

    def rows_with(self, word: str):
        """The rows (positions in `ids`) of the segments whose terms include `word`'s key,
        read from the index's postings (no scoring)."""
        import numpy as np

        vocab = self._vocab()
        matrix = getattr(self._retriever, "scores", None)
        t = vocab.get(self.stems(word.lower()))
        if t is None or not isinstance(matrix, dict):
            return np.zeros(0, dtype=np.int64)
        return np.asarray(matrix["indices"][matrix["indptr"][t]:matrix["indptr"][t + 1]])

    def search(self, query: str, k: int = 100, within: Iterable[int] | None = None,
               extra: tuple[str, ...] = (), extra_weight: float = 1.0) -> list[Hit]:
        """The `k` best segments for `query` (and `extra` terms, at `extra_weight`) by BM25;
        `within`: only the segments of these files (indices into `files`)."""
        import numpy as np

        scores = self.scores(query, extra, extra_weight)
        if scores is None:
            return []
        if within is not None:
            if self.file_of is None:
                return []
            keep = np.zeros(len(self.files), dtype=bool)
            keep[np.fromiter(within, dtype=np.int64)] = True
            scores = np.where(keep[np.asarray(self.file_of)], scores, 0)
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(self.ids[int(t)], float(scores[t])) for t in top if scores[t] > 0]


def _load_ids(path: Path, count: int) -> array:
    """The saved segment ids (8 bytes each, not a Python int each: 12M at a billion tokens)."""
    import numpy as np

    ids = _npy(path, mmap_mode="r")
    if ids.ndim != 1 or len(ids) != count or ids.dtype != np.int64:
        raise ValueError("the saved ids do not match the index")
    return array("q", ids.tobytes())


def _move_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # the build's files stay whole for its memory-mapped retriever
    except OSError:
        shutil.copyfile(src, dest)


def _params(retriever) -> dict[str, Any]:
    """A BM25's parameters as bm25s saves them (params.index.json, less num_docs)."""
    import bm25s

    return {"k1": retriever.k1, "b": retriever.b, "delta": retriever.delta,
            "method": retriever.method, "idf_method": retriever.idf_method,
            "dtype": retriever.dtype, "int_dtype": retriever.int_dtype,
            "version": bm25s.__version__, "backend": retriever.backend}


def _interleave(new, kept: dict[int, Any], rows: int):
    """Vectors in segment order: the reused ones at their positions, the new ones in order."""
    import numpy as np

    if not kept:
        return new
    out = np.empty((rows, new.shape[1] if len(new) else len(next(iter(kept.values())))),
                   dtype=np.float16)
    fresh = iter(new)
    for i in range(rows):
        out[i] = kept[i] if i in kept else next(fresh)
    return out


def _load_vectors(folder: Path, meta: dict, model: str, rows: int) -> tuple[Any, str | None]:
    """(the vectors memory-mapped, None) when they are `model`'s and fit the ids, else
    (None, why not)."""
    import numpy as np

    info = meta.get("vectors")
    if not isinstance(info, dict):
        return None, "missing"
    if info.get("model") != model:
        return None, f"of another model or recipe ({str(info.get('model'))[:60]})"
    try:
        vectors = _npy(folder / VECTORS, mmap_mode="r")
    except (OSError, ValueError):
        return None, "damaged (unreadable)"
    if vectors.dtype != np.float16 or vectors.ndim != 2 or vectors.shape[0] != rows \
            or vectors.shape[1] != info.get("dim"):
        return None, f"damaged (shape {vectors.shape}, {vectors.dtype}; {rows} segments)"
    return vectors, None
