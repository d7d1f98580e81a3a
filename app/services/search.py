"""Ranked retrieval over a stored corpus: several signals, each a ranked list, fused into one.

Signals (each says which segments it found, best first):
- `symbol`: definitions of identifiers the question names, rarest first. An identifier that is
  defined once in 86M tokens (`get_best_fit`) outranks everything; code-looking names
  (`snake_case`, `camelCase`, `ALL_CAPS`, digits) match in any case and come first, a
  capitalised word (`Packer`) matches as written, and plain lower-case words (`value`, `file`)
  are not looked up as symbols at all.
- `path`: among what the other signals found, segments in the files the question names
  (`pack.py`, `pack`, `email.base64mime`) or in rare folders it names (`... in the openai
  package` -> `openai/`), then those files' first segments.
- `bm25`: bm25s over code-aware terms (ingest.retrieval), whole snake_case identifiers included.
- `scope`: the same BM25 scores ranked inside the packages, folders and modules the question
  names in plain words (app.services.scope: "in uvicorn", "Starlette's", "the tarfile module"):
  over 80M tokens, the place a question is about is otherwise outvoted by files elsewhere that
  share its ordinary words.
- `dense` (only with SCOUTLENS_DENSE on): the question embedded with all-MiniLM-L6-v2, segments
  by cosine similarity to it; finds the place a natural-language question paraphrases without
  sharing its words. When the model cannot load, the others answer alone, with a note.
- `lines`: a second look at the fused candidates, each by its best few lines
  (app.services.passages): the one line that answers a question in plain words.
Reciprocal rank fusion (`RRF_K`) sums 1 / (k + rank) over the lists, so no signal's raw scores
need calibrating against another's, and a segment several signals agree on rises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from sqlalchemy import select

from app.models import Source, StoredSegment, Symbol
from app.services.access import CorpusNotFound, Who
from app.services.codewords import code_words
from app.services.index import LocatedSegment, Progress, embedder, fetch_segments, load_index
from app.services.passages import rank_by_lines
from app.services.scope import MAX_FILES, Scope, named_scope
from app.services.snapshot import Snapshot, open_snapshot
from app.settings import get_settings
from common.errors import UserError
from ingest.retrieval import STOP, query_terms

#: `words` is no list of its own: it adds code words for the question's words (app.services.
#: codewords) to bm25, scope and lines
SIGNALS = ("symbol", "path", "bm25", "scope", "lines", "words", "dense")
RRF_K = 60
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
CODE_LIKE = re.compile(r"_|[a-z][A-Z]|[A-Z]{2,}|\d")
DOTTED = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")
INITIAL = ".:;?!\"'(`"  # a capital after these starts a sentence or quote, not a name
PLACES = r"(?:module|package|file|folder|directory|library|crate|namespace)"
PATH_HITS = 12  # segments the path signal ranks (more would crowd out the others' best)
MAX_DEFINITIONS = 20  # a name defined more often than this says nothing about where to look
PER_NAME = 6  # definitions taken per name (the rarest names first)
CANDIDATES = 400  # BM25 hits considered
MAX_QUERY_CHARS = 4_000  # as a question to ask
MAX_NAMES = 64  # identifiers of one question looked up as symbols (bounds the SQL IN list)
#: RRF weight per signal (1 when absent). Dense at half weight: at full weight its neighbours
#: displaced identifier answers (bench_dense.py: 84% of all questions at 1.0, 86% at 0.5 or 0.3)
#: Scope at 2: a name the question says outweighs words it shares with files elsewhere
#: (bench_plain.py's development questions: 44% at 2 against 39% at 1 over site-packages).
WEIGHTS = {"dense": 0.5, "scope": 2.0}
DENSE_HITS = CANDIDATES  # segments the dense signal ranks
DENSE_QUERY_CHARS = 1_200  # the query's tail that is embedded (a follow-up's latest question)
LINE_CANDIDATES = 300  # fused hits the second look (`lines`) reads
CODE_WORD_WEIGHT = 0.6  # a code word for a question's word, against the word itself (lines)
#: the same in BM25: at 1.0 the code words cost docstring questions over site-packages
#: (bench_retrieval.py's `doc`: 85% against 95% at 0.5), at 0.5 plain-word questions keep most
#: of what they gain (bench_plain.py's development set: 44% against 50% at 1.0, 33% at 0)
CODE_WORD_BM25 = 0.5


@dataclass
class SearchHit:
    segment: LocatedSegment
    score: float
    #: signal -> 1-based rank of this segment in that signal's list
    signals: dict[str, int] = field(default_factory=dict)
    #: its best few lines for the question (first, last; 0-based in the segment), when the
    #: second look found any
    focus: tuple[int, int] | None = None

    def to_json(self) -> dict:
        s = self.segment
        where = ({"lines": [s.start, s.end]} if s.span_kind == "lines" else
                 {"page": s.start} if s.span_kind == "page" else
                 {"part": s.locator or f"part {s.start}"} if s.span_kind == "part" else
                 {s.span_kind: [s.start, s.end]})
        return {"path": s.path, **where, "where": s.where, "score": round(self.score, 6),
                "signals": self.signals, "tokens": s.tokens, "segment": s.id}


@dataclass
class Ranking:
    hits: list[SearchHit]
    notes: list[str] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)  # the names the ranking was scoped by


def _asked_words(question: str) -> set[str]:
    """Identifier-like words of the question, without sentence-initial capitals (`Return the
    length...` asks about returning, not about a class `Return`) and without the parts of a
    dotted module name (`test.test_float` names a file; see `_modules`)."""
    out = set()
    dotted = {p for m in DOTTED.finditer(question) for p in m.group().split(".")}
    for m in IDENT.finditer(question):
        w = m.group()
        if w.lower() in STOP or w in dotted:
            continue
        before = question[:m.start()].rstrip()
        if w[0].isupper() and not CODE_LIKE.search(w) and (not before or before[-1] in INITIAL):
            continue
        out.add(w)
    return out


def _modules(question: str) -> set[str]:
    """Paths that dotted module names in the question stand for (`email.base64mime` ->
    `email/base64mime.py`, `email/base64mime/__init__.py`)."""
    out = set()
    for m in DOTTED.finditer(question):
        base = m.group().replace(".", "/")
        out |= {f"{base}.py", f"{base}/__init__.py"}
    return out


def symbol_ranking(snap: Snapshot, question: str) -> list[int]:
    """Segments holding definitions of the names in `question`, the rarest names first."""
    words = _asked_words(question)
    # a code-looking name matches in any case; a capitalised word (`Packer`) only as written;
    # a plain lower-case word (`value`, `file`, `piece`) is left to BM25: as a symbol it would
    # pull in whatever happens to be named like an ordinary word
    names = sorted(words, key=lambda w: (not CODE_LIKE.search(w), -len(w)))[:MAX_NAMES]
    variants = {v for w in names if CODE_LIKE.search(w)
                for v in (w, w.lower(), w.upper(), w.capitalize())}
    variants |= {w for w in names if not CODE_LIKE.search(w) and w[0].isupper()}
    if not variants:
        return []
    session = snap.session
    defs = session.execute(
        select(Symbol.name, Symbol.source_id, Symbol.start_line, Symbol.end_line)
        .join(Source).where(Source.corpus_id == snap.id, Symbol.name.in_(variants))
        .order_by(Source.position, Symbol.start_line)).all()
    by_name: dict[str, list[tuple[int, int, int]]] = {}
    for sym, sid, a, b in defs:
        by_name.setdefault(sym.lower(), []).append((sid, a, b))
    asked = {w.lower(): w for w in words}

    def key(name: str) -> tuple[bool, int]:  # code-looking names first, then the rarest
        return (not CODE_LIKE.search(asked.get(name, name)), len(by_name[name]))

    found: list[int] = []
    for name in sorted(by_name, key=key):
        places = by_name[name]
        if len(places) > MAX_DEFINITIONS:
            continue
        for sid, a, b in places[:PER_NAME]:
            found += session.scalars(select(StoredSegment.id).where(
                StoredSegment.source_id == sid, StoredSegment.start <= b,
                StoredSegment.end >= a).order_by(StoredSegment.order).limit(2)).all()
    return found


#: a word of the question that may be a file's name: letters, digits and `_.-+@~#%=`, so
#: `**pack.py**`, `pack.py's`, `pack.py…` and `|pack.py|` name pack.py
_NAME_TOKEN = re.compile(r"[\w.\-+@~#%=]+")
#: file names looked for, at most (a pasted log of dotted words costs a search over every
#: path each)
MAX_FILE_NAMES = 32


def named_paths(paths: Sequence[str], joined: str, every: str, lowered: str, words: set[str],
                modules: set[str], limit: int = 5) -> list[str]:
    """The first `limit` paths, in corpus order, that the question (`lowered`) names: by a file
    name written as one of its words (`pack.py`), a file's stem called a module or file
    (`words`), or a dotted module's path (`modules`). `joined`: the paths joined by NUL,
    `every` the same lower-cased. Literal searches in C over the joined text: a loop over
    321,695 paths took 0.8 s."""
    padded = f"\0{every}\0"
    names = list(dict.fromkeys(n for t in _NAME_TOKEN.findall(lowered)
                               if "." in (n := t.rstrip("."))))[:MAX_FILE_NAMES]
    needles = [(f"{sep}{n}\0", False) for n in names for sep in "/\0"]
    needles += [(f"{sep}{w}{end}", end == ".") for w in words for sep in "/\0" for end in ".\0"]
    found: set[int] = set()
    for needle, stem in needles:
        found.update(_first_ends(padded, needle, stem, limit))
    if modules:
        cased = f"\0{joined}\0"
        found.update(cased.count("\0", 0, pos) for m in modules
                     if (pos := cased.find(f"\0{m}\0")) >= 0)
    return [paths[i] for i in sorted(found)[:limit]]


def _first_ends(padded: str, needle: str, stem: bool, limit: int) -> list[int]:
    """Indices of the first `limit` paths of NUL-`padded` whose name `needle` ends (it starts
    with "/" or NUL); with `stem`, the needle ends in a dot that must lie in the file's name,
    not in a folder's (`util.d/`)."""
    out: list[int] = []
    pos = padded.find(needle)
    counted, index = 0, -1  # NULs in padded[:counted]; the path index there
    while pos >= 0 and len(out) < limit:
        end = padded.find("\0", pos + 1)
        if stem and padded.find("/", pos + len(needle), end) >= 0:
            pos = padded.find(needle, pos + 1)  # a folder's; the file's may come later
            continue
        index += padded.count("\0", counted, pos + 1)
        counted = pos + 1
        out.append(index)
        pos = padded.find(needle, end)
    return out


def named_sources(snap: Snapshot, question: str,
                  files: list[str] | None = None) -> tuple[list[int], set[str]]:
    """(first segments of the files the question names, the folders it names). A file is named
    by its file name written as a word of the question (`pack.py`), a dotted module
    (`email.base64mime`) or its stem called a module or file (`the pack module`); a folder by a
    word called a package or folder that is one of its path's parts and holds few of the
    corpus's files (`openai` in site-packages). `files`: the corpus's paths in corpus order when
    an index is loaded (its file table), so they are not read from the database again (1.1 s at
    500,000 files)."""
    lowered = question.lower()
    # a word names a file or folder only when the question says so (`the tarfile module`, `in
    # the openai package`): `a random int` is not about random.py, nor is a class ConfigParser
    # about configparser.py
    words = {w.lower() for w in _asked_words(question)
             if re.search(
                 rf"\b(?:{re.escape(w.lower())}\s+{PLACES}|{PLACES}\s+{re.escape(w.lower())})\b",
                 lowered)}
    modules = _modules(question)
    if "." not in question and not words:
        return [], set()  # no file name, module or place word: nothing to look up
    session = snap.session
    paths = files if files is not None else session.scalars(select(Source.path).where(
        Source.corpus_id == snap.id, Source.status == "ok").order_by(Source.position)).all()
    joined = "\0".join(paths)  # NUL: the one character no path holds
    every = joined.lower()
    named = named_paths(paths, joined, every, lowered, words, modules)
    rare: set[str] = set()
    if words:
        # each folder part that is a place word, counted in C over all the paths at once
        limit = max(3, len(paths) // 50)
        rare = {w for w in words
                if 0 < len(re.findall(rf"(?<![^/\0]){re.escape(w)}(?=/)", every)) <= limit}
    found: list[int] = []
    for path in named:
        found += session.scalars(select(StoredSegment.id).join(Source).where(
            Source.corpus_id == snap.id, Source.path == path, Source.status == "ok")
            .order_by(StoredSegment.order).limit(2)).all()
    return found, rare


def search(name: str, query: str, k: int = 20, signals: tuple[str, ...] = SIGNALS,
           build_vectors: bool | None = None, progress: Progress | None = None,
           who: Who = None) -> Ranking:
    """The fused ranking of corpus `name` (one `who` may read) for `query` (`scoutlens search`,
    the MCP search tool): `rank` over a snapshot of it."""
    with ExitStack() as held:
        try:
            snap = held.enter_context(open_snapshot(name, who))
        except CorpusNotFound:  # worded as ever, for a name `who` may not read too
            raise CorpusNotFound(f"no such corpus: {name} (scoutlens corpora list shows the "
                                 "corpora)") from None
        return rank(snap, query, k, signals, build_vectors, progress)


def rank(snap: Snapshot, query: str, k: int = 20, signals: tuple[str, ...] = SIGNALS,
         build_vectors: bool | None = None, progress: Progress | None = None) -> Ranking:
    """The fused ranking of the snapshot's corpus for `query`: up to `k` hits, best first,
    each with the signals that found it. With dense retrieval on, vectors the index lacks are
    built when `build_vectors` (None: when quick; see app.services.index), reporting to
    `progress`."""
    notes: list[str] = []
    if len(query) > MAX_QUERY_CHARS:
        raise UserError(f"the query is {len(query):,} characters; the limit is "
                        f"{MAX_QUERY_CHARS:,}")
    dense = "dense" in signals and get_settings().dense
    if not query_terms(query) and not _asked_words(query):
        if not any(c.isalpha() and not c.isascii() for c in query):
            notes.append("the query has only common words: nothing to search for")
            return Ranking([], notes)
        if not dense:
            notes.append("the query has no Latin-script words, which is all the lexical index "
                         "reads: ask in English (or turn on SCOUTLENS_DENSE)")
            return Ranking([], notes)
        notes.append("the query has no Latin-script words: only the dense signal reads it, "
                     "and its model (all-MiniLM-L6-v2) knows English")
    lists: dict[str, list[int]] = {}
    if "symbol" in signals:
        lists["symbol"] = symbol_ranking(snap, query)
    model = embedder(notes.append) if dense else None
    scope, index, extra = Scope(), None, ()
    if "bm25" in signals or "lines" in signals or "scope" in signals or model is not None:
        index = load_index(snap, note=notes.append, dense=model is not None,
                           build_vectors=build_vectors, progress=progress)
        extra = tuple(code_words(query_terms(query[-DENSE_QUERY_CHARS:]))) \
            if "words" in signals else ()
        if "bm25" in signals:
            lists["bm25"] = [h.segment for h in index.search(
                query, k=max(k, CANDIDATES), extra=extra, extra_weight=CODE_WORD_BM25)]
        if "scope" in signals:
            if len(index.files) > MAX_FILES:
                notes.append(f"the corpus has {len(index.files):,} files: the packages a "
                             f"question names are not looked up over {MAX_FILES:,}")
            scope = named_scope(query[-DENSE_QUERY_CHARS:], index,
                                lambda path: _file_text(snap, path))
            if scope:
                lists["scope"] = [h.segment for h in index.search(
                    query, k=max(k, CANDIDATES), within=scope.files, extra=extra,
                    extra_weight=CODE_WORD_BM25)]
        if model is not None and index.vectors is not None:
            vector = model.embed([query[-DENSE_QUERY_CHARS:]])[0]
            lists["dense"] = [h.segment for h in index.dense_search(vector, DENSE_HITS)]
    named, folders = named_sources(snap, query, index.files if index is not None and
                                   index.files else None) if "path" in signals else ([], set())
    pool = list(dict.fromkeys(named + [i for ids in lists.values() for i in ids]))
    rows = {r.id: r for r in fetch_segments(snap, pool)}
    if "path" in signals:
        # what the other signals found inside the named files and folders, in their order,
        # then the named files' first segments
        named_paths = {rows[i].path for i in named if i in rows}
        found = [i for ids in lists.values() for i in ids]
        inside = [i for i in dict.fromkeys(found) if i in rows and (
            rows[i].path in named_paths or folders & set(rows[i].path.lower().split("/")[:-1]))]
        lists["path"] = list(dict.fromkeys(inside[:PATH_HITS] + named))
    fused: dict[int, SearchHit] = {}
    _fuse(fused, lists, rows)
    hits = _ordered(fused)
    if "lines" in signals and index is not None and hits:
        # the second look: the fused candidates by their best few lines (app.services.passages)
        weights = _weights(index, query, extra, scope.names)
        best = rank_by_lines(((h.segment.id, h.segment.text) for h in hits[:LINE_CANDIDATES]),
                             weights, index.stems)
        _fuse(fused, {"lines": [sid for sid, _ in best]}, rows)
        for sid, window in best:
            fused[sid].focus = (window.first, window.last)
        hits = _ordered(fused)
    return Ranking(hits[:k], notes, scope.names)


def _fuse(fused: dict[int, SearchHit], lists: dict[str, list[int]],
          rows: dict[int, LocatedSegment]) -> None:
    """Add each list's reciprocal ranks (RRF) to the hits in `fused`."""
    for signal, ids in lists.items():
        for rank, sid in enumerate(dict.fromkeys(ids), 1):
            if sid not in rows:
                continue
            hit = fused.setdefault(sid, SearchHit(rows[sid], 0.0))
            hit.score += WEIGHTS.get(signal, 1.0) / (RRF_K + rank)
            hit.signals[signal] = rank


def _ordered(fused: dict[int, SearchHit]) -> list[SearchHit]:
    return sorted(fused.values(), key=lambda h: (-h.score, h.segment.position, h.segment.start))


def _weights(index, query: str, extra: tuple[str, ...], names: list[str]) -> dict[str, float]:
    """Each term of the question (as the index keys it) by its IDF in the corpus: the rarer
    a word, the more a line holding it says; the code words for them (`extra`) at
    CODE_WORD_WEIGHT. The names that scoped the question (`names`) say where, not what: a
    line is not about uvicorn's keep-alive for saying "uvicorn"."""
    n = max(1, len(index.ids))
    out: dict[str, float] = {}
    said = {t for name in names for t in query_terms(name)}
    asked = [t for t in dict.fromkeys(query_terms(query[-DENSE_QUERY_CHARS:])) if t not in said]
    for term, factor in [(t, 1.0) for t in asked] + [(t, CODE_WORD_WEIGHT) for t in extra]:
        df = len(index.rows_with(term))
        key = index.stems(term)
        if df and key not in out:
            out[key] = factor * math.log(1 + (n - df + 0.5) / (df + 0.5))
    return out


def _file_text(snap: Snapshot, path: str) -> str | None:
    """A small file's text (a .dist-info/top_level.txt), or None."""
    texts = snap.session.scalars(select(StoredSegment.text).join(Source).where(
        Source.corpus_id == snap.id, Source.path == path, Source.status == "ok")
        .order_by(StoredSegment.order).limit(4)).all()
    return "".join(texts)[:4_000] or None

