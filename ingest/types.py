"""Typed records that flow through ingest: collect -> filter -> process -> pack.

Every stage takes and returns these dataclasses, so no stage needs another's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from common.errors import UserError

SpanKind = Literal["lines", "page", "cell", "time", "part"]
#: word, slides, sheet, web, mail, ebook: an analyst's documents, read into their parts (issue 24)
#: image: a picture file (PNG, JPEG, TIFF page by page, ...), read by OCR and, for a vision
#: target, sent as the picture itself (issue 25)
SourceKind = Literal["code", "text", "pdf", "notebook", "video",
                     "word", "slides", "sheet", "web", "mail", "ebook", "image"]
Status = Literal["ok", "skipped", "error"]


@dataclass(frozen=True)
class Candidate:
    """A file found by the collector, before anything has been read."""

    path: str  # provenance path shown to users (posix, relative to the input root)
    location: Path  # where the bytes are on disk now
    root: str  # the input this file came from (folder, file or archive), for pruning
    size: int
    flags: tuple[str, ...] = ()  # e.g. "name:not-utf8": what the name itself says
    #: (size, mtime_ns, ctime_ns, inode, device) as listed, for a file the user pointed at (not
    #: an archive's member): what ingest/statmemo compares to skip reading an unchanged file
    stamp: tuple[int, int, int, int, int] | None = None


@dataclass(frozen=True)
class Segment:
    """A contiguous, citable piece of a source: a run of lines, a PDF page, a notebook cell, or
    a part of a structured document (a Word section's paragraphs, a slide or its notes, a block
    of a sheet's rows, a mail's body, an e-book chapter).

    Concatenating a document's segment texts gives back its full text, so a pack of segments
    is lossless.
    """

    order: int
    text: str
    span_kind: SpanKind
    start: int  # first line, page or cell (1-based), or milliseconds into a video
    end: int  # last line / page / cell, inclusive; milliseconds for a video
    tokens: int = 0
    extra_tokens: int = 0  # tokens not in the text: a video frame's image for a vision model
    #: where a "part" is, as a reader would cite it: "§4 Renewal ¶2", "slide 5 (notes)",
    #: "Opex!A1:C5", "ch. 3 The Crossing"; start/end then number the parts (1-based)
    locator: str = ""

    @property
    def label(self) -> str:
        if self.locator:
            return self.locator
        if self.span_kind == "lines":
            return f"L{self.start}-L{self.end}"
        if self.span_kind == "page":
            return f"p.{self.start}"
        if self.span_kind == "time":
            return "@" + timestamp(self.start / 1000)[:-4]
        if self.span_kind == "part":  # no locator: the whole file, e.g. one picture
            return ""
        return f"cell {self.start}"


@dataclass(frozen=True)
class Symbol:
    """A definition found by tree-sitter: function, class, method, ..."""

    name: str
    kind: str
    start_line: int
    end_line: int
    signature: str  # the definition's header line(s), used for outlines
    parent: str | None = None


@dataclass
class Document:
    """A processed source: text split into segments, plus what was learned while reading it."""

    path: str
    root: str
    kind: SourceKind
    language: str | None
    sha256: str
    size: int
    segments: list[Segment]
    symbols: list[Symbol] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # e.g. "invalid-utf8", "ocr", "no-text-layer"
    tokens: int = 0
    # segments are a pure function of (bytes, split options): token counts can be cached under
    # this key instead of hashing every segment's text again (None: not pure, e.g. OCR)
    content_key: str | None = None
    #: sources read out of this one, in order: an mbox's messages, a mail's attachments (each
    #: a Document or a Skipped of its own, path "<this path> > <name>"); the pipeline lists
    #: them after this document and empties this list
    children: list[Document | Skipped] = field(default_factory=list)
    #: its segments' tokens were counted where it was read (a reading worker), by the tokenizer
    #: the pipeline counts with: remembered in the token cache, not counted again
    counted: bool = False

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


@dataclass(frozen=True)
class Skipped:
    """A file the pipeline did not turn into a document, and why (shown in reports)."""

    path: str
    root: str
    size: int
    status: Status  # "skipped" (noise filter, by choice) or "error" (could not be read)
    reason: str
    sha256: str | None = None


class IngestError(UserError):
    """A user-facing error: the message is shown as is, without a traceback."""


def timestamp(t: float) -> str:
    """`HH:MM:SS.mmm` for `t` seconds: how a time span is written in packs and citations."""
    ms = int(round(t * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@dataclass
class StructuredRead:
    """What a structured-document reader (ingest/word.py, slides.py, sheets.py, webpages.py,
    ebooks.py, mail.py) makes of one file, before the secret and injection checks: "part"
    segments with their locators, the file's metadata, and flags ("macros", "external:...",
    "hidden-sheet:Opex", "comments", "tracked-changes", "cut:Opex:rows 10001-"). A mail's
    attachments come as (name, bytes): each becomes a document of its own under the mail."""

    kind: SourceKind
    segments: list[Segment]
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    #: pictures inside the file (a slide's chart, a photo in a report), in reading order: each
    #: becomes a picture segment of its own right after segment `after` (ingest/embedded.py)
    images: list[EmbeddedImage] = field(default_factory=list)
    #: pictures ready for a vision target, named in the segments' `<picture image="...">` tags;
    #: ingest/documents.py saves them (or withholds one whose text held a secret)
    pictures: list[Picture] = field(default_factory=list)


@dataclass(frozen=True)
class EmbeddedImage:
    """A picture found inside a structured document, as its raw bytes (PNG, JPEG, EMF, ...)."""

    after: int  # index of the segment it follows (-1: before the first)
    locator: str  # how a reader cites it: "slide 3 picture 1", "§2 Results figure 1"
    data: bytes
    name: str = ""  # its name inside the container (ppt/media/image3.png), for flags


@dataclass(frozen=True)
class Picture:
    """One picture for a vision target: its JPEG scaled to its Llama 4 tile canvas (336-px
    tiles), and what it costs. `name` is where it is kept under the pictures folder
    (`<sha16>/<n>.jpg`), the `image="..."` of its `<picture>` tag."""

    name: str
    jpeg: bytes
    width: int  # the source picture's pixels (EXIF orientation applied)
    height: int
    grid: tuple[int, int]  # tile rows, cols
    image_tokens: int
