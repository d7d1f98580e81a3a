"""Process: one candidate's bytes -> a Document (or a Skipped with the reason).

Kind by extension: PDFs page by page, notebooks cell by cell, everything else as text split into
line-numbered segments, with tree-sitter symbols for code.

Every kind goes through the same two checks before anything is counted or stored: credentials
(`ingest.secrets`; values redacted unless `redact_secrets` is off) and prompt injection
(`ingest.injection`). Their flags say where, the way a citation would: `L<line>` for text, code
and notebooks (the line of the document's text; for a notebook its percent-format text),
`p<page>` for PDFs, `@HH:MM:SS` for video (a frame's OCR text or a subtitle cue), as in
`secret:L12:aws-access-key`, `secret:p3:github-token`, `injection:@00:01:23: <matched text>`.
A secret flag never holds the value; its kind is the part after the last colon.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Protocol

from ingest import secrets, textsplit
from ingest.filters import NoiseFilter
from ingest.injection import CHAT_FORMAT, INJECTION, find_flags
from ingest.languages import is_code, language_for
from ingest.notebooks import read_notebook
from ingest.symbols import extract_symbols
from ingest.types import Candidate, Document, IngestError, Segment, Skipped, timestamp
from ingest.video import VIDEO_SUFFIXES, VideoOptions, read_video
from ingest.video import segments as video_segments

MAX_SECRET_FLAGS = 100  # per document; every value is redacted all the same
#: a document whose secrets were found and kept (`--keep secrets`): re-ingesting with redaction
#: on reads it again, as it does a redacted one when secrets are to be kept
KEPT_SECRETS = "secrets:kept"
MAX_INJECTION_FLAGS = 20


@dataclass(frozen=True)
class ProcessOptions:
    segments: bool = True  # split into retrieval-sized windows (else one segment per file)
    symbols: bool = True  # run tree-sitter on code
    injections: bool = True  # scan for text written to steer a model
    redact_secrets: bool = True  # replace credentials by [REDACTED:<kind>] (flagged either way)
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


def _check(text: str, path: str, options: ProcessOptions, flags: list[str],
           where: Callable[[int], str], context: tuple[str, str] = ("", "")) -> str:
    """Secret and injection flags for one piece of text (`where` turns its line into a
    location; `context` is a PDF page's neighbours, for keys broken by a page break); returns
    the text to keep: redacted unless options say otherwise."""
    found = secrets.scan(text, path, *context) if any(context) else secrets.scan(text, path)
    if found.findings:
        room = MAX_SECRET_FLAGS - sum(f.startswith("secret:") for f in flags)
        new = dict.fromkeys(f"secret:{where(f.line)}:{f.kind}" for f in found.findings)
        flags.extend([f for f in new if f not in flags][:max(room, 0)])
        if options.redact_secrets:
            text = found.text
        elif KEPT_SECRETS not in flags:
            flags.append(KEPT_SECRETS)
    if options.injections:  # `injection:` and, in code, `chat-format:` (informational)
        room = {kind: MAX_INJECTION_FLAGS - sum(f.startswith(f"{kind}:") for f in flags)
                for kind in (INJECTION, CHAT_FORMAT)}
        if max(room.values()) > 0:
            for kind, line, snippet in find_flags(text, max(room.values()), path):
                if room[kind] > 0:
                    room[kind] -= 1
                    flags.append(f"{kind}:{where(line)}: {snippet}")
    return text


def _check_text(text: str, path: str, options: ProcessOptions, flags: list[str],
                memo: VerdictMemo | None, sha: str) -> str:
    """_check for a text or code file, remembering the common outcome (nothing found) per
    content and rules: a re-pack or re-ingest then scans only files it has not seen (the scan
    costs ~2 s on the standard library; a lookup next to nothing)."""
    if memo is None:
        return _check(text, path, options, flags, lambda line: f"L{line}")
    key = f"checks|{sha}|{secrets.rules_key(path)}|{options.injections}"
    if memo.verdict(key) == "clean":
        return text
    found = len(flags)
    kept = _check(text, path, options, flags, lambda line: f"L{line}")
    if len(flags) == found:
        memo.put_verdict(key, "clean")
    return kept


def _where(seg: Segment, offset: int, line: int) -> str:
    """A flag's location: the page, the time, or the line in the document's text."""
    if seg.span_kind == "page":
        return f"p{seg.start}"
    if seg.span_kind == "time":
        return "@" + timestamp(seg.start / 1000)[:-4]
    return f"L{offset + line}"


def _neighbours(segments: list[Segment], i: int) -> tuple[str, str]:
    """A PDF page's neighbouring pages (their text as read): a key broken by a page break is
    found, and redacted, on both."""
    if segments[i].span_kind != "page":
        return "", ""
    return (segments[i - 1].text if i else "",
            segments[i + 1].text if i + 1 < len(segments) else "")


def _check_metadata(meta: dict[str, str], path: str, options: ProcessOptions,
                    flags: list[str]) -> dict[str, str]:
    """A PDF's metadata (title, author, subject, keywords) gets its pages' secret check before
    it is stored: flagged `secret:meta.<key>:<kind>`, redacted unless secrets are kept."""
    only = replace(options, injections=False)
    return {key: _check(value, path, only, flags, lambda _line, k=key: f"meta.{k}")
            for key, value in meta.items()}


def _check_segments(segments: list[Segment], path: str, options: ProcessOptions,
                    flags: list[str]) -> list[Segment]:
    """_check for each page, cell or video segment."""
    out: list[Segment] = []
    offset = 0  # lines before this segment in the document's text
    for i, seg in enumerate(segments):
        text = _check(seg.text, path, options, flags, partial(_where, seg, offset),
                      _neighbours(segments, i))
        offset += seg.text.count("\n")
        out.append(seg if text == seg.text else replace(seg, text=text))
    return out


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
        flags = list(pdf.flags)
        pages = _check_segments(list(pdf.segments), path, options, flags)
        return Document(path, root, "pdf", None, sha, size, pages,
                        metadata=_check_metadata(pdf.metadata, path, options, flags), flags=flags)

    if "." + suffix in VIDEO_SUFFIXES:
        try:
            video = read_video(data, replace(options.video, ocr=options.video.ocr and options.ocr),
                               candidate.location,
                               options.frames_dir if options.vision else None)
        except IngestError as exc:
            return Skipped(path, root, size, "error", str(exc), sha)
        meta = {**video.metadata, "frames": str(len(video.frames)),
                "subtitles": str(len(video.cues)), "decoded": str(video.decoded)}
        flags = list(video.flags)
        parts = _check_segments(video_segments(video, options.vision), path, options, flags)
        return Document(path, root, "video", None, sha, size, parts, metadata=meta, flags=flags)

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
        segments = _check_segments(segments, path, options, flags)
        return Document(path, root, "notebook", nb_language or "python", sha, size, segments,
                        flags=flags)
    kept = _check_text(text, path, options, flags, memo, sha)
    # redaction keeps every newline, so the windows (and symbols' lines) are the original ones;
    # counts cached under the content key must not mix redacted and kept texts
    split = "windows" if options.segments else "whole"
    key = f"{sha}|{split}" + ("|redacted" if kept != text else "")
    segments = textsplit.windows(kept) if options.segments else textsplit.whole(kept)
    kind = "code" if is_code(language) else "text"
    doc = Document(path, root, kind, language, sha, size, segments, flags=flags, content_key=key)
    if kind == "code" and options.symbols:
        doc.symbols = extract_symbols(kept, language)
    return doc
