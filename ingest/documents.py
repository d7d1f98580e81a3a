"""Process: one candidate's bytes -> a Document (or a Skipped with the reason).

Kind by extension: PDFs page by page, notebooks cell by cell, everything else as text split into
line-numbered segments, with tree-sitter symbols for code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ingest import textsplit
from ingest.filters import NoiseFilter
from ingest.injection import find_injections
from ingest.languages import is_code, language_for
from ingest.notebooks import read_notebook
from ingest.symbols import extract_symbols
from ingest.types import Candidate, Document, IngestError, Skipped
from ingest.video import VIDEO_SUFFIXES, VideoOptions, read_video
from ingest.video import segments as video_segments


@dataclass(frozen=True)
class ProcessOptions:
    segments: bool = True  # split into retrieval-sized windows (else one segment per file)
    symbols: bool = True  # run tree-sitter on code
    injections: bool = True  # scan for text written to steer a model
    ocr: bool = True
    max_pdf_pages: int = 5_000
    noise: NoiseFilter = field(default_factory=NoiseFilter)
    video: VideoOptions = field(default_factory=VideoOptions)
    vision: bool = False  # the target reads images: video frames carry their image tokens
    frames_dir: Path | None = None  # where vision targets' frame JPEGs are kept


def read_bytes(candidate: Candidate) -> bytes | Skipped:
    try:
        with open(candidate.location, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return Skipped(candidate.path, candidate.root, candidate.size, "error",
                       "vanished while reading")
    except OSError as exc:
        return Skipped(candidate.path, candidate.root, candidate.size, "error",
                       f"unreadable: {exc.strerror or exc}")


def decode(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 (BOM stripped, CRLF -> LF); invalid bytes are replaced and flagged."""
    flags: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        flags.append("invalid-utf8")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, flags


class VerdictMemo(Protocol):
    def verdict(self, key: str) -> str | None: ...
    def put_verdict(self, key: str, reason: str) -> None: ...


def process(candidate: Candidate, data: bytes, options: ProcessOptions,
            sha: str | None = None, memo: VerdictMemo | None = None) -> Document | Skipped:
    """Turn bytes into a Document; noise that the filter removes becomes a Skipped. With a
    memo, the content filter's verdict is remembered by (sha256, filter options)."""
    sha = sha or hashlib.sha256(data).hexdigest()
    path, root, size = candidate.path, candidate.root, len(data)
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    flags: list[str] = []

    if suffix == "pdf":
        from ingest.pdf import read_pdf

        try:
            pdf = read_pdf(data, ocr=options.ocr, max_pages=options.max_pdf_pages)
        except IngestError as exc:
            return Skipped(path, root, size, "error", str(exc), sha)
        return Document(path, root, "pdf", None, sha, size, list(pdf.segments),
                        metadata=dict(pdf.metadata), flags=list(pdf.flags))

    if "." + suffix in VIDEO_SUFFIXES:
        try:
            video = read_video(data, replace(options.video, ocr=options.video.ocr and options.ocr),
                               candidate.location,
                               options.frames_dir if options.vision else None)
        except IngestError as exc:
            return Skipped(path, root, size, "error", str(exc), sha)
        meta = {**video.metadata, "frames": str(len(video.frames)),
                "subtitles": str(len(video.cues)), "decoded": str(video.decoded)}
        return Document(path, root, "video", None, sha, size,
                        video_segments(video, options.vision), metadata=meta,
                        flags=list(video.flags))

    if memo is not None:
        vkey = f"{sha}|{options.noise.options!r}"
        remembered = memo.verdict(vkey)
        if remembered is None:
            noise = options.noise.by_content(path, data)
            memo.put_verdict(vkey, noise or "")
        else:
            noise = remembered or None
    else:
        noise = options.noise.by_content(path, data)
    if noise is not None:
        if options.noise.enabled(noise):
            return Skipped(path, root, size, "skipped", noise, sha)
        flags.append(f"noise:{noise}")
    text, decode_flags = decode(data)
    flags += decode_flags
    language = language_for(path)

    if suffix == "ipynb":
        try:
            segments, nb_language = read_notebook(text)
        except IngestError as exc:
            return Skipped(path, root, size, "error", str(exc), sha)
        doc = Document(path, root, "notebook", nb_language or "python", sha, size, segments,
                       flags=flags)
    else:
        segments = textsplit.windows(text) if options.segments else textsplit.whole(text)
        kind = "code" if is_code(language) else "text"
        doc = Document(path, root, kind, language, sha, size, segments, flags=flags,
                       content_key=f"{sha}|{'windows' if options.segments else 'whole'}")
        if kind == "code" and options.symbols:
            doc.symbols = extract_symbols(text, language)
    if options.injections:
        body = doc.text
        for line, snippet in find_injections(body):
            doc.flags.append(f"injection:L{line}: {snippet}")
    return doc
