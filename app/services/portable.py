"""Documents made storable as they are in SQLite and PostgreSQL alike (column sizes that
PostgreSQL enforces, NUL that its text cannot hold)."""

from __future__ import annotations

from dataclasses import replace
from itertools import chain

from app.services.reports import FileRow
from ingest.pipeline import DocumentSpool, PipelineResult
from ingest.types import Document

MAX_PATH = 2000
MAX_SYMBOL = 500
NUL, REPLACEMENT = "\x00", "\ufffd"  # PostgreSQL text cannot hold NUL


def portable(result: PipelineResult, tok) -> list[FileRow]:
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
