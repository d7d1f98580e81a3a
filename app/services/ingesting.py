"""The ingest write: a pipeline's result into a corpus, incrementally, in one transaction, as the
corpus's only writer; then its retrieval index."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database import lock_key, session_scope
from app.models import Corpus, Source, StoredSegment, Symbol
from app.services.access import (
    CorpusNotFound,
    NotAllowed,
    Who,
    audit,
    can_change,
    corpus_readable,
    owner_of_new,
)
from app.services.changes import (
    ChangedMeanwhile,
    gone_and_replaced,
    previous_sources,
    secrets_differ,
)
from app.services.ingest_options import for_corpus
from app.services.kept_pictures import pictures_missing, prune_pictures
from app.services.portable import portable
from app.services.reports import FileRow, IngestReport
from app.services.tokencache import token_cache
from app.services.tokencache import tokenizer as tokenizer_for
from app.services.versions import version_of_sorted
from app.settings import database_url, get_settings
from ingest.pipeline import (
    DocumentSpool,
    PipelineOptions,
    PipelineResult,
    Progress,
    run_pipeline,
)
from ingest.tokenizers import Tokenizer
from ingest.types import Document, IngestError

NAME_RE = re.compile(r"^[\w][\w .@+-]{0,199}$")
#: the one refusal of a name held by a corpus the caller cannot see: it says nothing of whose
NAME_TAKEN = ("the corpus name {name!r} is taken (corpus names are shared by everyone on this "
              "server; what a corpus holds and whose it is are not): choose another")
#: sources written per INSERT batch: what is being written stays small
WRITE_BATCH = 2000

__all__ = ["CorpusNotFound"]  # raised here, defined with the access rules


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise IngestError(f"invalid corpus name {name!r}: use letters, digits, space, . _ - @ +")
    return name


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
        with session_scope(database_url(url)) as session:
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
                    if not secrets_differ(flags or [], redact)}
                for path in pictures_missing(session, existing.id):
                    known.pop(path, None)  # its kept pictures are gone: read it again

        kwargs = {"progress": progress} if progress else {}
        # the documents wait in a staging file, not in memory, until they are written
        result = run_pipeline(inputs, tok, options, known, token_cache(tok.fingerprint),
                              spool=True, **kwargs)
        if not result.documents and not result.unchanged and not result.skipped:
            raise IngestError(f"nothing to ingest: no files found in {', '.join(map(str, inputs))}")
        refused = portable(result, tok)

        try:
            report = _apply(name, tok, result, refused, prune, url,
                            options.process.redact_secrets, who)
            break
        except IntegrityError as exc:  # a bug, not the user's: one line, no SQL, no paths
            raise IngestError(f"could not store corpus {name!r}: the database refused the "
                              "ingest as inconsistent; nothing was changed (please report "
                              "this)") from exc
        except ChangedMeanwhile as exc:
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
    """Corpus names are one namespace for the deployment (see docs/security.md), so a name held
    by a corpus `who` cannot see is refused; the attempt is audited on its own (the refusal
    rolls the ingest back), so an admin sees someone trying names."""
    with session_scope(database_url(url)) as session:
        row = session.scalar(select(Corpus).where(Corpus.name == name))
        hidden = row is not None and not corpus_readable(who, row)
    if hidden:
        with session_scope(database_url(url)) as session:
            audit(session, who, "name-refused", name)
        raise NotAllowed(NAME_TAKEN.format(name=name))


def _apply(name: str, tok: Tokenizer, result: PipelineResult, refused: list[FileRow],
           prune: bool, url: str | None, redact: bool = True, who: Who = None) -> IngestReport:
    """Write one pipeline result in one transaction, as the corpus's only writer."""
    with session_scope(database_url(url)) as session:
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
        previous = previous_sources(session, row.id)
        stale = [p for p, sha in result.unchanged.items() if p not in previous
                 or previous[p].sha256 != sha or previous[p].status != "ok"
                 or secrets_differ(previous[p].flags or [], redact)]
        if stale:  # another writer changed them after we read them: read them again
            raise ChangedMeanwhile(stale)
        files: list[FileRow] = list(refused)

        gone, replaced = gone_and_replaced(result, previous, prune)
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
                      and not secrets_differ(before.flags or [], redact) else "changed")
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


def _in_path_order(docs: list[Document] | DocumentSpool) -> Iterator[Document]:
    if isinstance(docs, DocumentSpool):
        return docs.in_path_order()
    return iter(sorted(docs, key=lambda d: d.path))


def _index(name: str, report: IngestReport, url: str | None, progress: Progress | None,
           rebuild: bool = False) -> None:
    """The retrieval index of this version, built once here so questions only load it."""
    from app.services.index import build_index_of, index_dir, vectors_missing

    built = (index_dir(name, report.version_hash) / "segments.json").exists()
    if not rebuild and built and not (get_settings().dense
                                      and vectors_missing(name, report.version_hash)):
        return
    if progress:
        progress("index", 0, 1, "building the retrieval index")
    try:
        build_index_of(name, url, progress=progress, note=lambda text: None if text.startswith(
            "indexing") else report.notes.append(text))  # the progress bar says that one
    except (OSError, ValueError) as exc:  # asking rebuilds it when needed
        report.notes.append(f"retrieval index not built ({exc}); it is built on first use")
    if progress:
        progress("index", 1, 1, "retrieval index built")


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
