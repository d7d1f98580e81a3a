"""Corpora in the database: ingest (incremental, one transaction), list, show, remove, load."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database import lock_key, session_scope
from app.models import Corpus, Source, StoredSegment, Symbol
from app.services.access import (
    VISIBILITIES,
    CorpusNotFound,
    NotAllowed,
    Who,
    audit,
    can_change,
    corpus_for,
    corpus_readable,
    owner_of_new,
)
from app.services.ingest_options import for_corpus
from app.services.reports import FileRow, IngestReport
from app.services.tokencache import token_cache
from app.services.tokencache import tokenizer as tokenizer_for
from app.settings import get_settings
from ingest.documents import KEPT_SECRETS
from ingest.pipeline import (
    DocumentSpool,
    PipelineOptions,
    PipelineResult,
    Progress,
    run_pipeline,
)
from ingest.tokenizers import Tokenizer
from ingest.types import Document, IngestError
from ingest.types import Segment as SegmentData
from ingest.types import Symbol as SymbolData

NAME_RE = re.compile(r"^[\w][\w .@+-]{0,199}$")
# Column sizes that PostgreSQL enforces (SQLite would store anything): longer values are
# refused or cut here, the same way on both databases.
MAX_PATH = 2000
MAX_SYMBOL = 500
NUL, REPLACEMENT = "\x00", "\ufffd"  # PostgreSQL text cannot hold NUL
#: the one refusal of a name held by a corpus the caller cannot see: it says nothing of whose
NAME_TAKEN = ("the corpus name {name!r} is taken (corpus names are shared by everyone on this "
              "server; what a corpus holds and whose it is are not): choose another")
#: sources written per INSERT batch: what is being written stays small
WRITE_BATCH = 2000


__all__ = ["CorpusNotFound"]  # raised here, defined with the access rules


class _ChangedMeanwhile(Exception):
    """Files taken as unchanged were changed or removed by another writer before ours."""

    def __init__(self, paths: list[str]):
        super().__init__(", ".join(paths[:3]))
        self.paths = paths


def _url(url: str | None) -> str:
    return url or get_settings().db_url


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise IngestError(f"invalid corpus name {name!r}: use letters, digits, space, . _ - @ +")
    return name


def version_of_sources(pairs: list[tuple[str, str]], tokenizer_fp: str) -> str:
    return version_of_sorted(sorted(pairs), tokenizer_fp)


def version_of_sorted(pairs: Iterable[tuple[str, str]], tokenizer_fp: str) -> str:
    """The version of (path, sha256) pairs given in path order (a stream: a million sources'
    pairs are never held at once)."""
    h = hashlib.sha256(tokenizer_fp.encode())
    for path, sha in pairs:
        h.update(f"\0{path}\0{sha}".encode())
    return h.hexdigest()


def _secrets_differ(flags: list[str], redact: bool) -> bool:
    """Whether a stored source's text holds its secrets the other way than `redact` asks."""
    if not any(f.startswith("secret:") for f in flags):
        return False
    return redact == (KEPT_SECRETS in flags)


def ingest(inputs: list[Path], corpus: str, tokenizer: str | None = None,
           options: PipelineOptions | None = None, prune: bool = True,
           progress: Progress | None = None, url: str | None = None,
           who: Who = None) -> IngestReport:
    """Ingest inputs into a corpus (a new one is `who`'s; an existing one only its owner or an
    admin may change). Unchanged files (same path and sha256) are not re-read into segments
    nor re-counted; the database changes in one transaction, or not at all."""
    started = time.perf_counter()
    name = check_name(corpus)
    _refuse_hidden_name(name, who, url)
    given = options
    for attempt in range(3):
        with session_scope(_url(url)) as session:
            existing = session.scalar(select(Corpus).where(Corpus.name == name))
            _may_write(existing, name, who)
            spec = tokenizer or (existing.tokenizer if existing else get_settings().tokenizer)
            tok = tokenizer_for(spec)
            options = for_corpus(given, tok.spec)
            known: dict[str, str] = {}
            if existing is not None and existing.tokenizer == tok.spec:
                redact = options.process.redact_secrets
                # a file holding secrets is read again when they are now to be kept or redacted
                known = {path: sha for path, sha, flags in session.execute(
                    select(Source.path, Source.sha256, Source.flags)
                    .where(Source.corpus_id == existing.id, Source.status == "ok"))
                    if not _secrets_differ(flags or [], redact)}
                for path in _pictures_missing(session, existing.id):
                    known.pop(path, None)  # its kept pictures are gone: read it again

        kwargs = {"progress": progress} if progress else {}
        # the documents wait in a staging file, not in memory, until they are written
        result = run_pipeline(inputs, tok, options, known, token_cache(tok.fingerprint),
                              spool=True, **kwargs)
        if not result.documents and not result.unchanged and not result.skipped:
            raise IngestError(f"nothing to ingest: no files found in {', '.join(map(str, inputs))}")
        refused = _portable(result, tok)

        try:
            report = _apply(name, tok, result, refused, prune, url,
                            options.process.redact_secrets, who)
            break
        except IntegrityError as exc:  # a bug, not the user's: one line, no SQL, no paths
            raise IngestError(f"could not store corpus {name!r}: the database refused the "
                              "ingest as inconsistent; nothing was changed (please report "
                              "this)") from exc
        except _ChangedMeanwhile as exc:
            if attempt == 2:
                raise IngestError(f"corpus {name!r} kept changing during the ingest "
                                  f"({', '.join(exc.paths[:3])}); run it again") from None
    # rows rewritten under the same version (secrets now kept or redacted, a re-created
    # corpus) have new segment ids: the index of that version must be built again
    rebuild = bool(result.documents) or bool(report.count("removed"))
    del result, refused  # stored: the documents need not wait in memory for the index build
    prune_pictures(url)
    _index(name, report, url, progress, rebuild=rebuild)
    report.seconds = time.perf_counter() - started
    return report


def store_documents(name: str, tokenizer: str, docs: list[Document],
                    url: str | None = None, who: Who = None) -> IngestReport:
    """Store documents made elsewhere (an eval's copy of a corpus with needles planted in it)
    as a corpus of their own, written and indexed for retrieval as an ingest writes them."""
    tok = tokenizer_for(tokenizer)
    result = PipelineResult(docs, [], {}, [], sorted({d.root for d in docs}), len(docs))
    report = _apply(check_name(name), tok, result, [], False, url, who=who)
    _index(name, report, url, None, rebuild=True)
    return report


def _may_write(row: Corpus | None, name: str, who: Who) -> None:
    """A new corpus may be made by anyone signed in; an existing one changed by its owner or
    an admin. A name someone cannot see is refused without saying whose it is."""
    if row is None or can_change(who, row.owner):
        return
    if not corpus_readable(who, row):
        raise NotAllowed(NAME_TAKEN.format(name=name))
    raise NotAllowed(f"only the owner of {name!r} ({row.owner}) or an admin may re-ingest it")


def _refuse_hidden_name(name: str, who: Who, url: str | None) -> None:
    """Corpus names are one namespace for the deployment (see README, Security), so a name held
    by a corpus `who` cannot see is refused; the attempt is audited on its own (the refusal
    rolls the ingest back), so an admin sees someone trying names."""
    with session_scope(_url(url)) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        hidden = row is not None and not corpus_readable(who, row)
    if hidden:
        with session_scope(_url(url)) as session:
            audit(session, who, "name-refused", name)
        raise NotAllowed(NAME_TAKEN.format(name=name))


def _apply(name: str, tok: Tokenizer, result: PipelineResult, refused: list[FileRow],
           prune: bool, url: str | None, redact: bool = True, who: Who = None) -> IngestReport:
    """Write one pipeline result in one transaction, as the corpus's only writer."""
    with session_scope(_url(url)) as session:
        lock_key(session, f"corpus:{name}")  # one writer per corpus; others wait, then apply
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        _may_write(row, name, who)  # again: it may have been made meanwhile
        created = row is None
        if row is None:
            row = Corpus(name=name, tokenizer=tok.spec, owner=owner_of_new(who),
                         visibility="private", shared_groups=[])
            session.add(row)
            session.flush()
        same_tokenizer = row.tokenizer == tok.spec
        row.tokenizer = tok.spec
        previous = _previous(session, row.id)
        stale = [p for p, sha in result.unchanged.items() if p not in previous
                 or previous[p].sha256 != sha or previous[p].status != "ok"
                 or _secrets_differ(previous[p].flags or [], redact)]
        if stale:  # another writer changed them after we read them: read them again
            raise _ChangedMeanwhile(stale)
        files: list[FileRow] = list(refused)

        gone, replaced = _gone_and_replaced(result, previous, prune)
        for src in gone:
            if src.status == "ok":  # a file that was skipped all along never was in the corpus
                files.append(FileRow(src.path, "removed", 0, src.bytes))
        for chunk in range(0, len(replaced), 500):
            session.execute(delete(Source).where(Source.id.in_(replaced[chunk:chunk + 500])))

        position = (session.scalar(select(func.max(Source.position))
                                   .where(Source.corpus_id == row.id)) or 0)
        batch: list[Document] = []
        for doc in _in_path_order(result.documents):
            before = previous.get(doc.path)
            # the same bytes written by a concurrent ingest of this corpus are not a change;
            # the same bytes read again to keep or redact their secrets are
            status = ("added" if before is None else "unchanged"
                      if before.sha256 == doc.sha256 and before.status == "ok" and same_tokenizer
                      and not _secrets_differ(before.flags or [], redact) else "changed")
            files.append(FileRow(doc.path, status, doc.tokens, doc.size, "", tuple(doc.flags)))
            batch.append(doc)
            if len(batch) >= WRITE_BATCH:
                position = _insert_documents(session, row.id, batch, position)
                batch = []
        position = _insert_documents(session, row.id, batch, position)
        del batch
        for sk in result.skipped:
            before = previous.get(sk.path)
            # a source that was in the corpus and is skipped now has left it
            status = "removed" if before is not None and before.status == "ok" else sk.status
            files.append(FileRow(sk.path, status, 0, sk.size, sk.reason))
        for i in range(0, len(result.skipped), WRITE_BATCH):
            _insert_skipped(session, row.id, result.skipped[i:i + WRITE_BATCH])

        for path in sorted(result.unchanged):
            src = previous[path]
            files.append(FileRow(path, "unchanged", src.tokens, src.bytes, "",
                                 tuple(src.flags or ())))
        del previous, gone, replaced
        session.flush()
        row.version_hash, total = _version_and_tokens(session, row.id, tok.fingerprint)
        files.sort(key=lambda f: f.path)
        report = IngestReport(name, tok.spec, created, files, total, row.version_hash,
                              result.notes, 0.0)
        audit(session, who, "ingest", name, created=created, tokens=total,
              files=len(result.documents), version=row.version_hash[:16])
    return report


def _gone_and_replaced(result: PipelineResult, previous: dict[str, Row],
                       prune: bool) -> tuple[list[Row], list[int]]:
    """The previous sources no longer there (under a root ingested now), and the ids of the
    previous rows this ingest replaces: what is held is the size of the previous corpus,
    never a set of the new one's paths."""
    if not previous:
        return [], []
    # a mail's attachments and an mbox's messages ("<file> > <name>") go with their file:
    # kept while it is unchanged, dropped when it is read again without them
    missing = set(previous) if prune else {p for p in previous if " > " in p}
    replaced: list[int] = []
    reread: set[str] = set()
    docs = (d.path for d in result.documents)
    for p in chain(docs, (s.path for s in result.skipped)):
        missing.discard(p)
        if p in previous:
            replaced.append(previous[p].id)
            reread.add(p)
    missing.difference_update(result.unchanged)
    roots = set(result.roots)
    gone = [s for p, s in previous.items() if p in missing and (
        p.split(" > ", 1)[0] in reread if " > " in p and not prune else
        s.root in roots and p.split(" > ", 1)[0] not in result.unchanged)]
    return gone, replaced + [s.id for s in gone]


def _in_path_order(docs: list[Document] | DocumentSpool) -> Iterator[Document]:
    if isinstance(docs, DocumentSpool):
        return docs.in_path_order()
    return iter(sorted(docs, key=lambda d: d.path))


def _index(name: str, report: IngestReport, url: str | None, progress: Progress | None,
           rebuild: bool = False) -> None:
    """The retrieval index of this version, built once here so questions only load it."""
    from app.services.index import build_index, index_dir, vectors_missing

    built = (index_dir(name, report.version_hash) / "segments.json").exists()
    if not rebuild and built and not (get_settings().dense
                                      and vectors_missing(name, report.version_hash)):
        return
    if progress:
        progress("index", 0, 1, "building the retrieval index")
    try:
        build_index(name, url, progress=progress, note=lambda text: None if text.startswith(
            "indexing") else report.notes.append(text))  # the progress bar says that one
    except (OSError, ValueError) as exc:  # asking rebuilds it when needed
        report.notes.append(f"retrieval index not built ({exc}); it is built on first use")
    if progress:
        progress("index", 1, 1, "retrieval index built")


def _portable(result: PipelineResult, tok) -> list[FileRow]:
    """Make what the pipeline found storable as is in SQLite and PostgreSQL alike: NUL
    characters (past the binary sniff's first 8 KB) become U+FFFD and are recounted, symbol
    names are cut to their column, and files whose paths exceed theirs are reported, not
    stored. Returns the refused files' report rows."""
    fix = False
    refused = []
    for p, root, size, unfit in chain(
            ((d.path, d.root, d.size, _unportable(d)) for d in result.documents),
            ((k.path, k.root, k.size, False) for k in result.skipped)):
        fix = fix or unfit
        if len(p) > MAX_PATH or len(root) > MAX_PATH:
            refused.append(FileRow(p, "error", 0, size, f"path longer than {MAX_PATH:,} "
                                                        "characters: not stored"))
    gone = {f.path for f in refused}
    if gone:
        result.skipped[:] = [k for k in result.skipped if k.path not in gone]
    if isinstance(result.documents, DocumentSpool):
        if fix or gone:  # rare: the staging file is written again, changed
            result.documents = result.documents.rewrite(
                lambda d: None if d.path in gone else _made_portable(d, tok))
        return refused
    if gone:
        result.documents[:] = [d for d in result.documents if d.path not in gone]
    for doc in result.documents:
        _made_portable(doc, tok)
    return refused


def _unportable(doc: Document) -> bool:
    """Whether a document holds what a column cannot: NUL, or an over-long symbol name."""
    return (any(NUL in s.text for s in doc.segments)
            or any(NUL in y.signature or len(y.name) > MAX_SYMBOL
                   or len(y.parent or "") > MAX_SYMBOL for y in doc.symbols))


def _made_portable(doc: Document, tok) -> Document:
    """The document with NUL as U+FFFD (recounted) and symbol names cut to their column."""
    if any(NUL in s.text for s in doc.segments):
        segs = [replace(s, text=s.text.replace(NUL, REPLACEMENT),
                        tokens=tok.count(s.text.replace(NUL, REPLACEMENT)) + s.extra_tokens)
                if NUL in s.text else s for s in doc.segments]
        doc.tokens += sum(a.tokens for a in segs) - sum(b.tokens for b in doc.segments)
        doc.segments = segs
    if any(NUL in y.signature or len(y.name) > MAX_SYMBOL
           or len(y.parent or "") > MAX_SYMBOL for y in doc.symbols):
        doc.symbols = [replace(y, name=y.name[:MAX_SYMBOL],
                               parent=y.parent[:MAX_SYMBOL] if y.parent else y.parent,
                               signature=y.signature.replace(NUL, REPLACEMENT))
                       for y in doc.symbols]
    return doc


def _previous(session: Session, corpus_id: int) -> dict[str, Row]:
    """The corpus's sources as plain rows (ORM objects took ~3 KB each: a re-ingest of a
    million files held them all)."""
    return {r.path: r for r in session.execute(
        select(Source.id, Source.path, Source.root, Source.sha256, Source.status, Source.flags,
               Source.bytes, Source.tokens).where(Source.corpus_id == corpus_id))}


def _insert_documents(session: Session, corpus_id: int, docs: list[Document],
                      position: int) -> int:
    """One batch of documents with their segments and symbols; returns the last position.
    Batches keep the rows being written small next to what was read."""
    rows = []
    for doc in docs:
        position += 1
        rows.append({"corpus_id": corpus_id, "path": doc.path, "root": doc.root,
                     "kind": doc.kind, "language": doc.language, "sha256": doc.sha256,
                     "bytes": doc.size, "tokens": doc.tokens, "status": "ok",
                     "skip_reason": None, "position": position, "flags": doc.flags,
                     "meta": doc.metadata})
    if rows:
        returned = session.execute(
            insert(Source).returning(Source.id, Source.path, sort_by_parameter_order=True), rows)
        _insert_children(session, docs, {path: sid for sid, path in returned})
    return position


def _insert_skipped(session: Session, corpus_id: int, skipped: list) -> None:
    if skipped:
        session.execute(insert(Source), [{
            "corpus_id": corpus_id, "path": sk.path, "root": sk.root, "kind": "skipped",
            "language": None, "sha256": sk.sha256, "bytes": sk.size, "tokens": 0,
            "status": sk.status, "skip_reason": sk.reason, "position": 0, "flags": [],
            "meta": {}} for sk in skipped])


def _version_and_tokens(session: Session, corpus_id: int, fingerprint: str) -> tuple[str, int]:
    """The corpus's version and token total, its readable sources streamed in path order
    (byte order, as Python sorts: PostgreSQL is told to compare as "C")."""
    path = Source.path
    if session.get_bind().dialect.name == "postgresql":
        path = path.collate("C")
    total = 0

    def pairs() -> Iterator[tuple[str, str]]:
        nonlocal total
        for p, sha, tokens in session.execute(
                select(Source.path, Source.sha256, Source.tokens)
                .where(Source.corpus_id == corpus_id, Source.status == "ok").order_by(path)
                .execution_options(yield_per=WRITE_BATCH)):
            total += tokens
            yield p, sha

    return version_of_sorted(pairs(), fingerprint), total


def _insert_children(session: Session, docs: list[Document], ids: dict[str, int]) -> None:
    segments, symbols = [], []
    for doc in docs:
        sid = ids[doc.path]
        segments.extend({"source_id": sid, "order": s.order, "span_kind": s.span_kind,
                         "start": s.start, "end": s.end, "tokens": s.tokens, "text": s.text,
                         "locator": s.locator[:500] or None}
                        for s in doc.segments)
        symbols.extend({"source_id": sid, "name": y.name, "kind": y.kind,
                        "start_line": y.start_line, "end_line": y.end_line,
                        "signature": y.signature, "parent": y.parent} for y in doc.symbols)
    if segments:
        session.execute(insert(StoredSegment), segments)
    if symbols:
        session.execute(insert(Symbol), symbols)


@dataclass(frozen=True)
class CorpusSummary:
    name: str
    created_at: str
    updated_at: str
    tokenizer: str
    version_hash: str
    sources: int
    skipped: int
    tokens: int
    bytes: int
    owner: str = "admin"
    visibility: str = "private"
    groups: tuple[str, ...] = ()

    @property
    def shared(self) -> str:
        """`private`, `everyone` or the groups it is shared with."""
        return ", ".join(self.groups) if self.visibility == "groups" else self.visibility


def list_corpora(url: str | None = None, who: Who = None) -> list[CorpusSummary]:
    """The corpora `who` may read, by name."""
    with session_scope(_url(url)) as session:
        return [_summary(session, c) for c in session.scalars(select(Corpus).order_by(Corpus.name))
                if corpus_readable(who, c)]


def _summary(session: Session, c: Corpus) -> CorpusSummary:
    ok = session.execute(select(func.count(), func.coalesce(func.sum(Source.tokens), 0),
                                func.coalesce(func.sum(Source.bytes), 0))
                         .where(Source.corpus_id == c.id, Source.status == "ok")).one()
    skipped = session.scalar(select(func.count()).where(Source.corpus_id == c.id,
                                                        Source.status != "ok")) or 0
    return CorpusSummary(c.name, c.created_at.isoformat(timespec="seconds"),
                         c.updated_at.isoformat(timespec="seconds"), c.tokenizer,
                         c.version_hash, ok[0], skipped, ok[1], ok[2], c.owner, c.visibility,
                         tuple(c.shared_groups or ()))


def corpus_exists(name: str, url: str | None = None, who: Who = None) -> bool:
    """Whether `who` may see a corpus of that name."""
    with session_scope(_url(url)) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        return row is not None and corpus_readable(who, row)


def show_corpus(name: str, url: str | None = None,
                who: Who = None) -> tuple[CorpusSummary, list[FileRow]]:
    with session_scope(_url(url)) as session:
        row = corpus_for(session, name, who)
        files = [FileRow(s.path, s.status, s.tokens, s.bytes, s.skip_reason or "",
                         tuple(s.flags or ()))
                 for s in session.scalars(select(Source).where(Source.corpus_id == row.id)
                                          .order_by(Source.path))]
        return _summary(session, row), files


def remove_corpus(name: str, url: str | None = None, who: Who = None) -> CorpusSummary:
    with session_scope(_url(url)) as session:
        row = corpus_for(session, name, who, change="delete")
        summary = _summary(session, row)
        session.execute(delete(Corpus).where(Corpus.id == row.id))
        audit(session, who, "delete", name, tokens=summary.tokens)
    from app.services.index import remove_indexes

    remove_indexes(name)  # a corpus created again under this name must not find them
    prune_pictures(url)
    return summary


_PICTURE_NAME = re.compile(r'<(?:frame|picture)\b[^>]*\bimage="([^"/]+)/([^"]+)"')


def _pictures_missing(session: Session, corpus_id: int) -> set[str]:
    """Paths of a corpus's sources whose kept pictures (frame and picture JPEGs a vision
    target receives) are no longer in the frames folder: re-ingesting must draw them again."""
    root = get_settings().frames_dir
    rows = session.execute(
        select(Source.path, StoredSegment.text).join(StoredSegment)
        .where(Source.corpus_id == corpus_id, StoredSegment.text.contains(' image="')))
    return {path for path, text in rows
            if any(not (root / folder / name).is_file()
                   for folder, name in _PICTURE_NAME.findall(text))}


def prune_pictures(url: str | None = None) -> int:
    """Delete the kept pictures no stored source needs any more (a removed corpus's, a changed
    file's old ones): a screenshot of a secret kept on purpose must not outlive its corpus.
    Pictures live under the first 16 hex digits of their source's sha256, shared by every
    corpus holding that file. Returns the folders removed."""
    import shutil

    root = get_settings().frames_dir
    if not root.is_dir():
        return 0
    folders = [f for f in root.iterdir() if f.is_dir() and re.fullmatch(r"[0-9a-f]{16}", f.name)]
    if not folders:
        return 0
    with session_scope(_url(url)) as session:
        used = {sha[:16] for sha in session.scalars(
            select(Source.sha256).where(Source.sha256.is_not(None)).distinct())}
    gone = [f for f in folders if f.name not in used]
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    return len(gone)


def share_corpus(name: str, visibility: str, groups: list[str] | None = None,
                 who: Who = None, url: str | None = None) -> CorpusSummary:
    """Make corpus `name` private, shared with `groups`, or shared with everyone signed in
    (its owner or an admin only)."""
    if visibility not in VISIBILITIES:
        raise NotAllowed(f"share as one of {' | '.join(VISIBILITIES)}, not {visibility!r}")
    # "a,b" names two groups, as a proxy's comma-joined groups header does
    wanted = sorted({g.strip() for part in groups or () for g in (part or "").split(",")
                     if g.strip()})
    if visibility == "groups" and not wanted:
        raise NotAllowed("name at least one group to share with")
    with session_scope(_url(url)) as session:
        row = corpus_for(session, name, who, change="share")
        row.visibility = visibility
        row.shared_groups = wanted if visibility == "groups" else []
        audit(session, who, "share", name, visibility=visibility,
              groups=wanted if visibility == "groups" else None)
        session.flush()
        return _summary(session, row)


def load_documents(name: str, symbols: bool = False, url: str | None = None,
                   who: Who = None) -> tuple[str, list[Document]]:
    """A corpus's readable sources in pack order (by position), with segments; and its tokenizer."""
    with session_scope(_url(url)) as session:
        row = corpus_for(session, name, who)
        sources = session.scalars(select(Source).where(
            Source.corpus_id == row.id, Source.status == "ok").order_by(Source.position)).all()
        segs: dict[int, list[SegmentData]] = {s.id: [] for s in sources}
        for sid, order, kind, start, end, tokens, text, locator in session.execute(
                select(StoredSegment.source_id, StoredSegment.order, StoredSegment.span_kind,
                       StoredSegment.start, StoredSegment.end, StoredSegment.tokens,
                       StoredSegment.text, StoredSegment.locator)
                .join(Source).where(Source.corpus_id == row.id, Source.status == "ok")
                .order_by(StoredSegment.source_id, StoredSegment.order)):
            segs[sid].append(SegmentData(order, text, kind, start, end, tokens,
                                         locator=locator or ""))
        syms: dict[int, list[SymbolData]] = {s.id: [] for s in sources}
        if symbols:
            for y in session.scalars(select(Symbol).join(Source).where(
                    Source.corpus_id == row.id).order_by(Symbol.source_id, Symbol.start_line)):
                syms[y.source_id].append(SymbolData(y.name, y.kind, y.start_line, y.end_line,
                                                    y.signature, y.parent))
        docs = [Document(s.path, s.root, s.kind, s.language, s.sha256 or "", s.bytes,
                         segs[s.id], syms[s.id], dict(s.meta or {}), list(s.flags or []),
                         s.tokens) for s in sources]
        return row.tokenizer, docs


def looks_like_path(target: str) -> bool:
    """`./x`, `../x`, `/x`, `~`, `.` or anything with a separator: a bare word is a name."""
    seps = [c for c in (os.sep, os.altsep) if c]
    return target in (".", "..") or target.startswith("~") or any(c in target for c in seps)


def corpus_name_for(path: Path) -> str:
    """The corpus a path is ingested into when no name is given: its folder or file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name).strip("-.") or "corpus"


def ingest_target(args: list[str], corpus: str | None = None) -> tuple[str, list[Path]]:
    """(corpus, paths) from `ingest`'s arguments, read as `ask` and `pack` read theirs: with
    `corpus` given every argument is a path; else a first argument that is a bare word (no
    separator, not `.`/`~`) followed by paths is the corpus name; else all are paths and the
    corpus is named after the first."""
    if not args:
        raise IngestError("nothing to ingest: give a corpus name and paths (scoutlens ingest "
                          "NAME PATH...)")
    if corpus is None and len(args) > 1 and not looks_like_path(args[0]):
        corpus, args = args[0], args[1:]
    paths = [Path(a).expanduser() for a in args]
    return corpus or corpus_name_for(paths[0]), paths


@dataclass(frozen=True)
class CorpusInfo:
    spec: str  # tokenizer the corpus was counted with
    version: str
    tokens: int
    sources: int  # readable sources


def corpus_info(name: str) -> CorpusInfo:
    """What deciding full vs retrieval needs, in one aggregate query (reading 22k sources'
    metadata took 0.7 s of a question over a 77M-token corpus)."""
    with session_scope(get_settings().db_url) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        if row is None:
            raise IngestError(f"no such corpus: {name}")
        count, tokens = session.execute(
            select(func.count(), func.coalesce(func.sum(Source.tokens), 0))
            .where(Source.corpus_id == row.id, Source.status == "ok")).one()
        return CorpusInfo(row.tokenizer, row.version_hash, int(tokens), int(count))


def source_documents(name: str, paths: list[str]) -> dict[str, Document]:
    """Metadata of these sources of corpus `name` (path, kind, language, flags; no text)."""
    out: dict[str, Document] = {}
    with session_scope(get_settings().db_url) as session:
        cid = session.scalar(select(Corpus.id).where(Corpus.name == name))
        for i in range(0, len(paths), 500):
            for p, r, k, lang, sha, size, fl, t in session.execute(select(
                    Source.path, Source.root, Source.kind, Source.language, Source.sha256,
                    Source.bytes, Source.flags, Source.tokens).where(
                    Source.corpus_id == cid, Source.path.in_(paths[i:i + 500]),
                    Source.status == "ok")):
                out[p] = Document(p, r, k, lang, sha or "", size, [], flags=list(fl or []),
                                  tokens=t)
    return out


def corpus_version(name: str) -> str | None:
    """The stored version of corpus `name` now (None when there is none)."""
    with session_scope(get_settings().db_url) as session:
        return session.scalar(select(Corpus.version_hash).where(Corpus.name == name))
