"""The BM25 matrix of a corpus built from its terms spilled to disk, in bounded memory.

bm25s builds its matrix from every segment's terms held in memory, then sorts all of it at
once: ~36 bytes per (segment, term) pair, most of an ingest's peak (1.03 GB at 80M tokens), and
growing with the corpus. Here each segment's distinct terms and their counts are written to a
file as the segments stream in (the same layout the next version's build reuses), the document
frequencies are summed as they come, and the matrix is written column range by column range:
each range (at most RANGE_PAIRS pairs) is filled from one sequential read of that file, then
appended to the saved arrays. Memory is a range's buffers and the per-term and per-segment
arrays, not the corpus. The arrays are bm25s's own (its `save` layout: data, indices and indptr
of a CSC matrix, vocab and params), with the same float32 scores: bm25s's own scoring
functions compute them (tests/unit/test_postings.py compares the two builds).
"""

from __future__ import annotations

import json
import threading
from array import array
from pathlib import Path
from typing import Any

#: numpy reads a .npy header with ast.literal_eval, which CPython 3.11 does not make safe in
#: threads at once ("SystemError: AST constructor recursion depth mismatch": two asks in the
#: web UI building or loading an index together): every .npy header read here and in
#: ingest.retrieval takes this lock
NPY_HEADERS = threading.Lock()
#: (segment, term) pairs in one column range of the matrix: 8 bytes each while it is filled
RANGE_PAIRS = 8 << 20
READ_PAIRS = 1 << 18  # pairs read from the spill at a time (~150 bytes of work each)
#: what bm25s names its files
DATA, INDICES, INDPTR = "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"
VOCAB, PARAMS = "vocab.index.json", "params.index.json"
#: the vocabulary again, as a table a question asks term by term (ingest.retrieval.TermIds)
VOCAB_DB = "vocab.sqlite"
#: each segment's distinct term ids and counts (what a later version reuses) and their offsets
TERM_IDS, TERM_COUNTS, TERM_OFFSETS = "terms.ids.npy", "terms.counts.npy", "terms.offsets.npy"


class NpyWriter:
    """A one-dimensional .npy file written in pieces: the data goes to a side file, then the
    header (which needs the length) and the data are joined without holding the array."""

    def __init__(self, path: Path, dtype):
        import numpy as np

        self.path, self.dtype, self.length = path, np.dtype(dtype), 0
        self.raw = path.with_suffix(".part")

    def __enter__(self) -> NpyWriter:
        self.fh = self.raw.open("wb")
        return self

    def write(self, values) -> None:
        import numpy as np

        data = np.ascontiguousarray(values, dtype=self.dtype)
        self.fh.write(data.tobytes())
        self.length += len(data)

    def __exit__(self, *exc: object) -> None:
        import numpy as np

        self.fh.close()
        if exc[0] is not None:
            self.raw.unlink(missing_ok=True)
            return
        with self.path.open("wb") as out, self.raw.open("rb") as src:
            np.lib.format.write_array_header_1_0(out, {
                "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                "shape": (self.length,)})
            while chunk := src.read(16 << 20):
                out.write(chunk)
        self.raw.unlink()


class Postings:
    """Segments' terms as they stream in: `add` writes a segment's distinct term ids and counts
    to `folder` (TERM_IDS, TERM_COUNTS) and counts each term's documents; `write_bm25` then
    writes the matrix next to them."""

    def __init__(self, folder: Path):
        import numpy as np

        self.folder = folder
        self._ids = NpyWriter(folder / TERM_IDS, np.uint32).__enter__()
        self._counts = NpyWriter(folder / TERM_COUNTS, np.uint32).__enter__()
        self.distinct = array("I")  # per segment: how many distinct terms
        self.length = array("I")  # per segment: how many terms (BM25's document length)
        self._df = np.zeros(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_pairs = 0
        self.closed = False

    def add(self, term_ids) -> None:
        """One segment, as its terms' ids in order (repeats counted)."""
        import numpy as np

        unique, counts = np.unique(np.asarray(term_ids, dtype=np.uint32), return_counts=True)
        self.add_counted(unique, counts)

    def add_counted(self, unique, counts) -> None:
        """One segment, as its distinct term ids (ascending) and how often each occurs."""
        import numpy as np

        self._ids.write(unique)
        self._counts.write(counts)
        self.distinct.append(len(unique))
        self.length.append(int(np.sum(counts, dtype=np.int64)))
        self._pending.append(np.asarray(unique, dtype=np.int64))
        self._pending_pairs += len(unique)
        if self._pending_pairs >= READ_PAIRS:
            self._sum_df()

    def add_batch(self, ids, counts, distinct, lengths) -> None:
        """Segments at once: their distinct term ids (ascending within each) and counts, end to
        end; how many of them are each segment's; each segment's count of terms."""
        import numpy as np

        self._ids.write(ids)
        self._counts.write(counts)
        self.distinct.frombytes(np.ascontiguousarray(distinct, dtype=np.uint32).tobytes())
        self.length.frombytes(np.ascontiguousarray(lengths, dtype=np.uint32).tobytes())
        self._pending.append(np.asarray(ids, dtype=np.int64))
        self._pending_pairs += len(ids)
        if self._pending_pairs >= READ_PAIRS:
            self._sum_df()

    def _sum_df(self) -> None:
        import numpy as np

        if self._pending:
            got = np.bincount(np.concatenate(self._pending))
            if len(got) > len(self._df):
                self._df = np.concatenate([self._df, np.zeros(len(got) - len(self._df),
                                                              dtype=np.int64)])
            self._df[:len(got)] += got
        self._pending, self._pending_pairs = [], 0

    def close(self) -> None:
        """Finish the term files (the offsets too)."""
        import numpy as np

        if self.closed:
            return
        self.closed = True
        self._sum_df()
        self._ids.__exit__(None, None, None)
        self._counts.__exit__(None, None, None)
        offsets = np.zeros(len(self.distinct) + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self.distinct, dtype=np.uint32), out=offsets[1:])
        np.save(self.folder / TERM_OFFSETS, offsets)

    def abandon(self) -> None:
        """A build that failed: the open files are closed and removed."""
        for writer in (self._ids, self._counts):
            if not writer.fh.closed:
                writer.__exit__(RuntimeError, None, None)

    def write_bm25(self, vocab: dict[str, int], params: dict[str, Any]) -> None:
        """bm25s's saved index in `folder`, as `bm25s.BM25(**params).index(...)` then `save`
        would write it for these segments; `params` are a fresh BM25's (k1, b, method, ...)."""
        import numpy as np
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

        self.close()
        n_docs, n_vocab = len(self.distinct), len(vocab)
        if params["method"] in ("bm25l", "bm25+"):
            raise ValueError("only BM25 methods without a non-occurrence term are built here")
        df = np.zeros(n_vocab, dtype=np.int64)
        df[:min(n_vocab, len(self._df))] = self._df[:n_vocab]
        lengths = np.frombuffer(self.length, dtype=np.uint32).astype(np.int64)
        avg = lengths.mean()  # as bm25s: np.array([len(doc) ...]).mean()
        idf_of = _select_idf_scorer(params["idf_method"])
        idf = np.zeros(n_vocab, dtype=params["dtype"])
        values = np.unique(df[df != 0])  # bm25s computes each term's idf; a df's is the same
        by_df = np.array([idf_of(int(v), N=n_docs) for v in values], dtype=np.float64)
        idf[df != 0] = by_df[np.searchsorted(values, df[df != 0])]
        tfc = _select_tfc_scorer(params["method"])
        indptr = np.zeros(n_vocab + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        np.save(self.folder / INDPTR, indptr)
        with NpyWriter(self.folder / DATA, params["dtype"]) as data, \
                NpyWriter(self.folder / INDICES, params["int_dtype"]) as indices:
            for lo, hi in _ranges(indptr):
                self._fill(lo, hi, indptr, idf, lengths, avg, tfc, params, data, indices)
        (self.folder / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False),
                                         encoding="utf-8")
        write_vocab_db(self.folder / VOCAB_DB, vocab)
        (self.folder / PARAMS).write_text(json.dumps({**params, "num_docs": n_docs},
                                                     indent=4))

    def _fill(self, lo: int, hi: int, indptr, idf, lengths, avg, tfc, params, data,
              indices) -> None:
        """Columns lo..hi-1 of the matrix, rows ascending in each, from one read of the terms."""
        import numpy as np

        size = int(indptr[hi] - indptr[lo])
        out = np.empty(size, dtype=params["dtype"])
        rows_out = np.empty(size, dtype=params["int_dtype"])
        cursor = indptr[lo:hi] - indptr[lo]
        distinct = np.frombuffer(self.distinct, dtype=np.uint32)
        seg_of_pair = 0  # the first segment of the pairs read next
        with (self.folder / TERM_IDS).open("rb") as fi, \
                (self.folder / TERM_COUNTS).open("rb") as fc:
            _skip_header(fi)
            _skip_header(fc)
            while seg_of_pair < len(distinct):
                segs = _segments_upto(distinct, seg_of_pair, READ_PAIRS)
                n = int(distinct[seg_of_pair:segs].sum(dtype=np.int64))
                ids = np.fromfile(fi, dtype=np.uint32, count=n)
                counts = np.fromfile(fc, dtype=np.uint32, count=n)
                keep = (ids >= lo) & (ids < hi)
                if keep.any():
                    rows = np.repeat(np.arange(seg_of_pair, segs, dtype=np.int64),
                                     distinct[seg_of_pair:segs])[keep]
                    terms = ids[keep].astype(np.int64)
                    tf = counts[keep].astype(params["dtype"])
                    scores = idf[terms] * tfc(tf_array=tf, l_d=lengths[rows], l_avg=avg,
                                              k1=params["k1"], b=params["b"],
                                              delta=params["delta"])
                    col = terms - lo
                    order = np.argsort(col, kind="stable")  # keeps the rows ascending
                    col = col[order]
                    rank = np.arange(len(col)) - np.searchsorted(col, col, side="left")
                    where = cursor[col] + rank
                    out[where] = scores[order]
                    rows_out[where] = rows[order]
                    cursor += np.bincount(col, minlength=hi - lo)
                seg_of_pair = segs
        data.write(out)
        indices.write(rows_out)


def _ranges(indptr) -> list[tuple[int, int]]:
    """Column ranges of at most RANGE_PAIRS pairs (a column with more is a range alone)."""
    import numpy as np

    out, lo, n = [], 0, len(indptr) - 1
    while lo < n:
        hi = int(np.searchsorted(indptr, indptr[lo] + RANGE_PAIRS, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        out.append((lo, hi))
        lo = hi
    return out


def _segments_upto(distinct, first: int, pairs: int) -> int:
    """The end of a run of segments from `first` holding about `pairs` pairs (at least one)."""
    import numpy as np

    total, end = 0, first
    step = 4096
    while end < len(distinct) and total < pairs:
        chunk = distinct[end:end + step]
        total += int(chunk.sum(dtype=np.int64))
        end += len(chunk)
    return end


def _skip_header(fh) -> None:
    import numpy as np

    with NPY_HEADERS:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)


def write_vocab_db(path: Path, vocab: dict[str, int]) -> None:
    """The vocabulary as an SQLite table (term -> id), in term order (a B-tree filled in
    order): what a question looks up without parsing all of it."""
    import sqlite3

    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("CREATE TABLE vocab (term TEXT PRIMARY KEY, id INTEGER NOT NULL) "
                     "WITHOUT ROWID")
        conn.executemany("INSERT INTO vocab VALUES (?, ?)", sorted(vocab.items()))
        conn.commit()
    finally:
        conn.close()
