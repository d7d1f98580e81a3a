"""Remembered reads: what a structured reader made of a file, OCR included, kept by content.

OCR is the costly part of a picture, a scan or an Office file's charts (the standard library's
26 icons: 0.33 s on every re-pack), and its output is not a pure function of the bytes: it
depends on Tesseract's version and its language data. So a read is remembered under the
file's sha256, the reader's options and, when OCR ran, `ocr.fingerprint` (Tesseract's
version, the trained data's path, size and mtime); a new Tesseract reads every picture again.
A read that saved JPEGs for a vision target or holds a mail's attachments is not remembered
(those are files and bytes, not text). Stored as JSON, never pickled: the cache is data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import get_args

from ingest import ocr
from ingest.pictures import PictureOptions
from ingest.types import Segment, SourceKind, SpanKind, StructuredRead

#: bump when a reader's output changes for the same bytes
READ_VERSION = "1"
#: a memo key's prefix: the token cache keeps these apart from the verdicts it loads whole
PREFIX = "read|"
MAX_TEXT = 1_000_000  # characters: a larger read is read again rather than stored
KINDS = frozenset(get_args(SourceKind))
SPANS = frozenset(get_args(SpanKind))


def key(sha: str, suffix: str, options: PictureOptions) -> str:
    """The memo key of file `sha` read as `.suffix` under `options` (OCR's fingerprint in it
    when OCR is on)."""
    fp = ocr.fingerprint(options.ocr_language) if options.ocr else "no-ocr"
    return f"{PREFIX}{READ_VERSION}|{sha}|{suffix}|{options!r}|{fp}"


def dump(got: StructuredRead) -> str | None:
    """`got` as JSON, or None when it cannot be remembered: pictures saved for a vision target,
    embedded images still to read, attachments, or too much text."""
    if got.pictures or got.images or got.attachments:
        return None
    if sum(len(s.text) for s in got.segments) > MAX_TEXT:
        return None
    return json.dumps({"kind": got.kind, "segments": [asdict(s) for s in got.segments],
                       "metadata": got.metadata, "flags": got.flags})


def load(text) -> StructuredRead | None:
    """The read `dump` wrote; None for anything else (a damaged or foreign cache entry is only
    a slower run: the file is read again)."""
    try:
        raw = json.loads(text) if isinstance(text, str) else None
        if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
            return None
        segments = [replace(Segment(0, "", "part", 0, 0), **s) for s in raw["segments"]]
        got = StructuredRead(raw["kind"], segments, dict(raw["metadata"]), list(raw["flags"]))
    except Exception:  # noqa: BLE001 ValueError, TypeError, RecursionError, ...
        return None
    ok = (isinstance(raw["segments"], list) and isinstance(raw["flags"], list)
          and all(_segment_ok(s) for s in segments)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in got.metadata.items())
          and all(isinstance(f, str) for f in got.flags))
    return got if ok else None


def _segment_ok(seg: Segment) -> bool:
    ints = (seg.order, seg.start, seg.end, seg.tokens, seg.extra_tokens)
    return (isinstance(seg.text, str) and isinstance(seg.locator, str)
            and seg.span_kind in SPANS
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in ints))
