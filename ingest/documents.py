"""Process: one candidate's bytes -> a Document (or a Skipped with the reason).

Kind by extension: PDFs page by page, notebooks cell by cell, everything else as text split into
line-numbered segments, with tree-sitter symbols for code.

Every kind goes through the same two checks before anything is counted or stored: credentials
(`ingest.secrets`; values redacted unless `redact_secrets` is off) and prompt injection
(`ingest.injection`). Their flags say where, the way a citation would: `L<line>` for text, code
and notebooks (the line of the document's text; for a notebook its percent-format text),
`p<page>` for PDFs, `@HH:MM:SS` for video (a frame's OCR text or a subtitle cue), a part's
locator in brackets for Office files, web pages, mail and e-books, as in
`secret:L12:aws-access-key`, `secret:p3:github-token`, `injection:@00:01:23: <matched text>`,
`secret:[Opex!A1:C5]:aws-access-key`. A secret flag never holds the value; its kind is the part
after the last colon.

Office files, web pages, mail and e-books go to their reader (`READERS`: one module each, the
contract in `ingest.types.StructuredRead`); a mail's attachments and an mbox's messages come
back as sources of their own (`Document.children`), read by the same dispatch, nested at most
`MAX_DEPTH` deep.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path, PurePosixPath
from typing import Protocol

from ingest import readmemo, secrets, textsplit
from ingest.counting import text_key
from ingest.filters import ARCHIVE_SUFFIXES, DOCUMENT_SUFFIXES, IMAGE_SUFFIXES, NoiseFilter
from ingest.injection import CHAT_FORMAT, FLAGS_VERSION, INJECTION, find_flags
from ingest.injection import is_code as inject_is_code
from ingest.languages import is_code, language_for
from ingest.notebooks import read_notebook
from ingest.pictures import PictureOptions, decoration
from ingest.statmemo import stamp
from ingest.symbols import extract_symbols
from ingest.types import (
    Candidate,
    Document,
    IngestError,
    Picture,
    Segment,
    Skipped,
    StructuredRead,
    timestamp,
)
from ingest.video import VIDEO_SUFFIXES, VideoOptions, read_video
from ingest.video import segments as video_segments

MAX_SECRET_FLAGS = 100  # per document; every value is redacted all the same
#: a document whose secrets were found and kept (`--keep secrets`): re-ingesting with redaction
#: on reads it again, as it does a redacted one when secrets are to be kept
KEPT_SECRETS = "secrets:kept"
MAX_INJECTION_FLAGS = 20

#: suffix -> (module, entry point): each reads bytes into a StructuredRead (ingest/types.py)
READERS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("docx", "docm"), ("ingest.word", "read_word")),
    **dict.fromkeys(("pptx", "pptm"), ("ingest.slides", "read_slides")),
    **dict.fromkeys(("odt", "odp", "rtf"), ("ingest.opendoc", "read_opendoc")),
    **dict.fromkeys(("xlsx", "xlsm", "xls", "ods", "csv", "tsv"), ("ingest.sheets", "read_sheet")),
    **dict.fromkeys(("html", "htm", "xhtml", "mhtml", "mht"), ("ingest.webpages", "read_webpage")),
    "epub": ("ingest.ebooks", "read_epub"),
    **dict.fromkeys(("eml", "mbox"), ("ingest.mail", "read_mail")),
    "msg": ("ingest.outlook", "read_msg"),
}
assert {"." + s for s in READERS} == set(DOCUMENT_SUFFIXES)
HTML_SUFFIXES = frozenset({"html", "htm", "xhtml"})  # not .mhtml: a saved page, never source
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: a folder holding one of these is a code project: its HTML files are source code
PROJECT_MARKERS = (
    ".git", "package.json", "pyproject.toml", "setup.py", "setup.cfg", "Cargo.toml", "go.mod",
    "pom.xml", "build.gradle", "build.gradle.kts", "Gemfile", "composer.json", "Makefile",
    "CMakeLists.txt", "mix.exs", "deno.json", "angular.json", "tsconfig.json", "manage.py",
)
_TEMPLATE = re.compile(rb"\{\{|\{%|<%|<\?php|\bv-(?:if|for|bind)=|\bng-[a-z]+=")
MAX_DEPTH = 5  # a mail in a mail in a mail ...: attachments below this depth are not read
MAX_CHILDREN = 20_000  # sources read out of one file (an mbox's messages and attachments)


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
    frames_dir: Path | None = None  # where vision targets' frame and picture JPEGs are kept
    pictures: PictureOptions = field(default_factory=PictureOptions)

    def picture_options(self) -> PictureOptions:
        """The picture options in force: JPEGs only where they can be kept, OCR only if on."""
        return replace(self.pictures, vision=self.vision and self.frames_dir is not None,
                       ocr=self.ocr and self.pictures.ocr)


def read_bytes(candidate: Candidate, stamped: list | None = None) -> bytes | Skipped:
    """The file's bytes; with `stamped`, the stamp of the file they were read from is appended
    to it (fstat of the open file: a link retargeted or a folder swapped since the listing
    shows as another stamp)."""
    try:
        with open(candidate.location, "rb") as fh:
            if stamped is not None:
                stamped.append(stamp(os.fstat(fh.fileno())))
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
    return _checked(text, path, options, flags, where, context)[0]


def _checked(text: str, path: str, options: ProcessOptions, flags: list[str],
             where: Callable[[int], str], context: tuple[str, str] = ("", "")
             ) -> tuple[str, bool]:
    """_check, and whether the text is clean: every check ran and found nothing (a finding
    past the flags' room, or a check skipped for want of room, is not clean)."""
    clean = True
    found = secrets.scan(text, path, *context) if any(context) else secrets.scan(text, path)
    if found.findings:
        clean = False
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
                clean = False
                if room[kind] > 0:
                    room[kind] -= 1
                    flags.append(f"{kind}:{where(line)}: {snippet}")
        else:
            clean = False  # not looked at: not known to be clean
    return text, clean


def _check_key(sha_or_text: str, path: str, options: ProcessOptions) -> str:
    """A check's memo key: the content, and everything about the path and options a check's
    outcome depends on (the secret rules, the subtitle seams, code or not for chat tokens,
    redaction, injections)."""
    return (f"checks|{sha_or_text}|{secrets.rules_key(path)}|{inject_is_code(path)}"
            f"|{options.injections}|{FLAGS_VERSION}|{options.redact_secrets}")


def _check_text(text: str, path: str, options: ProcessOptions, flags: list[str],
                memo: VerdictMemo | None, sha: str) -> str:
    """_check for a text or code file, its outcome remembered per content and rules: "clean",
    the flags it raised (an injection note, a secret kept on purpose), or, where a secret was
    redacted, the flags and the redacted text (a read memo: looked up alone, not loaded with
    the verdicts). A re-pack or re-ingest then scans only files it has not seen (the scan costs
    ~2 s on the standard library; a lookup next to nothing). At entry a file has no secret or
    injection flag yet, so replaying the flags a scan raised gives what the scan gives."""
    if memo is None:
        return _check(text, path, options, flags, lambda line: f"L{line}")
    key = _check_key(sha, path, options)
    known = memo.verdict(key)
    if known == "clean":
        return text
    raised, kept = _remembered(known[6:] if isinstance(known, str) and known.startswith("flags:")
                               else memo.verdict(readmemo.PREFIX + key), text,
                               redacted=not (isinstance(known, str)
                                             and known.startswith("flags:")))
    if raised is not None:
        flags.extend(f for f in raised if f not in flags)
        return kept
    found = len(flags)
    kept, clean = _checked(text, path, options, flags, lambda line: f"L{line}")
    if clean and kept == text and len(flags) == found:
        memo.put_verdict(key, "clean")
    elif kept == text:
        memo.put_verdict(key, "flags:" + json.dumps(flags[found:]))
    elif len(kept) <= readmemo.MAX_TEXT:
        memo.put_verdict(readmemo.PREFIX + key, json.dumps([flags[found:], kept]))
    return kept


def _remembered(value, text: str, redacted: bool) -> tuple[list[str] | None, str]:
    """(flags, text to keep) from a remembered check: a JSON list of flags (the text kept as
    it is), or, `redacted`, [flags, redacted text]; (None, text) for anything else (a damaged
    or foreign cache entry: the file is scanned again)."""
    if not isinstance(value, str) or not value:
        return None, text
    try:
        got = json.loads(value)
    except Exception:  # noqa: BLE001 ValueError, RecursionError: only a slower run
        return None, text
    if redacted:
        if not (isinstance(got, list) and len(got) == 2 and isinstance(got[1], str)):
            return None, text
        got, text = got
    if isinstance(got, list) and all(isinstance(f, str) for f in got):
        return got, text
    return None, text


def _where(seg: Segment, offset: int, line: int) -> str:
    """A flag's location: the page, the time, or the line in the document's text."""
    if seg.span_kind == "page":
        return f"p{seg.start}"
    if seg.span_kind == "time":
        return "@" + timestamp(seg.start / 1000)[:-4]
    if seg.span_kind == "part":  # a part without a locator is the whole file (one picture)
        return f"[{seg.locator}]" if seg.locator else "[file]"
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
                    flags: list[str], memo: VerdictMemo | None = None) -> list[Segment]:
    """_check for each page, cell or video segment. With a memo, a part found clean before
    (by its text's hash and the rules) is not scanned again: a web page's hundred sections
    cost the re-pack of the standard library 0.15 s."""
    out: list[Segment] = []
    offset = 0  # lines before this segment in the document's text
    for i, seg in enumerate(segments):
        context = _neighbours(segments, i)
        key = _check_key(text_key(seg.text), path, options) \
            if memo is not None and not any(context) else None
        if key is not None and memo is not None and memo.verdict(key) == "clean":
            offset += seg.text.count("\n")
            out.append(seg)
            continue
        text, clean = _checked(seg.text, path, options, flags, partial(_where, seg, offset),
                               context)
        if key is not None and memo is not None and clean:
            memo.put_verdict(key, "clean")
        offset += seg.text.count("\n")
        out.append(seg if text == seg.text else replace(seg, text=text))
    return out


_PICTURE_ATTRS = re.compile(r' image_tokens="\d+" tiles="\d+x\d+" image="([^"]+)"')


def keep_pictures(checked: list[Segment], read: list[Segment], pictures: list[Picture],
                  options: ProcessOptions, flags: list[str]) -> list[Segment]:
    """Save the JPEGs a vision target will receive, under `frames_dir`; a picture whose segment
    held a secret (its text was redacted) is withheld instead, unless secrets are kept on
    purpose: its tag loses the image and its cost, and its words stay (redacted)."""
    if not pictures:
        return checked
    by_name = {p.name: p for p in pictures}
    out = []
    for seg, before in zip(checked, read, strict=True):
        names = _PICTURE_ATTRS.findall(seg.text)
        if names and seg.text != before.text and options.redact_secrets:
            where = _where(seg, 0, 1)
            note = f"picture-withheld:{where}: it shows a secret"
            flags.extend([note] if note not in flags else [])
            seg = replace(seg, text=_PICTURE_ATTRS.sub("", seg.text), extra_tokens=0)
            if options.frames_dir is not None:  # kept by an ingest that kept secrets
                for name in names:  # only this file's own pictures: a tag typed in a
                    if name in by_name:  # document's text names no file to delete
                        (options.frames_dir / name).unlink(missing_ok=True)
            names = []
        for name in names:
            picture = by_name.get(name)
            if picture is not None and options.frames_dir is not None:
                try:
                    target = options.frames_dir / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(picture.jpeg)
                except OSError as exc:
                    note = f"picture-not-saved:{name}: {exc.strerror or exc}"
                    flags.extend([note] if note not in flags else [])
        out.append(seg)
    return out


@lru_cache(maxsize=4096)
def _marker_in(folder: str) -> str | None:
    """The first project marker a folder holds (cached: a repository's folders are asked once)."""
    return next((m for m in PROJECT_MARKERS if os.path.lexists(os.path.join(folder, m))), None)


def _project_marker(candidate: Candidate) -> str | None:
    """A project marker in a folder between the file and its input's top (both included),
    as "<marker> in <folder>/"; None for a file given on its own (an upload) or a folder that
    is not a code project."""
    rel = PurePosixPath(candidate.path)
    if len(rel.parts) < 2 or candidate.root == str(candidate.location):
        return None
    folder = Path(candidate.location).parent
    top = Path(candidate.root)
    for level in range(len(rel.parts) - 1, -1, -1):
        marker = _marker_in(str(folder))
        if marker is not None:
            shown = "/".join(rel.parts[:level])
            return f"{marker} in {shown + '/' if shown else 'the top folder'}"
        if folder == top or folder.parent == folder:
            break
        folder = folder.parent
    return None


def html_is_source(candidate: Candidate, data: bytes) -> str | None:
    """The rule for an HTML file: source code (read as text, as before) when it holds template
    syntax ({{ }}, {% %}, <% %>, <?php, v-if=, ng-*=) or lies in a code project (a folder from
    its own up to the input's top holds .git, package.json, pyproject.toml, Makefile, ...);
    a web page otherwise: a file uploaded on its own, a saved page, a documents folder.
    Returns why it is source code, or None."""
    if _TEMPLATE.search(data[:65536]):
        return "template syntax"
    return _project_marker(candidate)


def _reader(suffix: str) -> Callable[[bytes, str], StructuredRead]:
    module, name = READERS[suffix]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise IngestError(f"no reader for .{suffix} files in this installation") from None


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _structured(candidate: Candidate, data: bytes, suffix: str, options: ProcessOptions,
                sha: str, flags: list[str], depth: int,
                read: Callable[[bytes, str], StructuredRead] | None = None,
                memo: VerdictMemo | None = None) -> Document | Skipped:
    """An Office file, web page, mail, e-book or picture through its reader (`read`, else the
    suffix's in READERS), then the same secret and injection checks as every kind, per part;
    pictures inside it become segments of their own; a mail's attachments become its
    children."""
    path, root, size = candidate.path, candidate.root, len(data)
    # a read is remembered by content (with OCR's fingerprint): a re-run OCRs nothing again
    rkey = readmemo.key(sha, suffix, options.picture_options()) if memo is not None else None
    kept = memo.verdict(rkey) if memo is not None and rkey is not None else None
    got = readmemo.load(kept) if kept else None
    try:
        if got is None:
            got = (read or _reader(suffix))(data, path)
            if got.images:
                from ingest.embedded import insert_pictures

                got = insert_pictures(got, options.picture_options(), sha)
            if memo is not None and rkey is not None and (dumped := readmemo.dump(got)):
                memo.put_verdict(rkey, dumped)
    except IngestError as exc:
        return Skipped(path, root, size, "error", _one_line(str(exc)), sha)
    except (RecursionError, MemoryError):
        return Skipped(path, root, size, "error", f"{suffix}: too deeply nested or too large",
                       sha)
    except Exception as exc:  # noqa: BLE001 a reader's library choking on hostile bytes
        return Skipped(path, root, size, "error",
                       _one_line(f"unreadable .{suffix} file ({type(exc).__name__}: {exc})"), sha)
    flags = flags + [f for f in got.flags if f not in flags]
    parts = _check_segments(list(got.segments), path, options, flags, memo)
    redacted = any(a.text != b.text for a, b in zip(parts, got.segments, strict=True))
    parts = keep_pictures(parts, got.segments, got.pictures, options, flags)
    # OCR is not a pure function of the bytes (tesseract's version, its language data)
    ocr_read = any(seg.text.startswith("<picture") or "\n<picture" in seg.text for seg in parts)
    key = None if ocr_read else f"{sha}|parts" + ("|redacted" if redacted else "")
    doc = Document(path, root, got.kind, None, sha, size, parts,
                   metadata=_check_metadata(dict(got.metadata), path, options, flags),
                   flags=flags, content_key=key)
    if got.attachments:
        doc.children = _children(candidate, got.attachments, options, depth, doc.flags,
                                 messages=suffix == "mbox")
    return doc


def _child_path(parent: str, name: str, taken: set[str]) -> str:
    """`<parent> > <name>`: unique among its siblings (two attachments may share a name)."""
    name = " ".join(name.replace("/", "∕").split()) or "attachment"
    path, n = f"{parent} > {name}", 1
    while path in taken:
        n += 1
        path = f"{parent} > {name} ({n})"
    taken.add(path)
    return path


_MAIL_HEADER = re.compile(rb"(?im)^(?:from|date|subject|received|message-id|return-path):")


def _looks_like_mail(data: bytes) -> bool:
    """A message named by its date and subject (an mbox's message): header lines first."""
    head = data[:4096].split(b"\n\n", 1)[0]
    return (re.match(rb"[A-Za-z][A-Za-z0-9-]*:[ \t]", head) is not None
            and len(_MAIL_HEADER.findall(head)) >= 2)


def _suffix(name: str) -> str:
    """A file name's suffix ("" for `2026-03-02 "v2.1 notes"`: a label, not a file type)."""
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _children(parent: Candidate, attachments: list[tuple[str, bytes]], options: ProcessOptions,
              depth: int, flags: list[str], messages: bool = False) -> list[Document | Skipped]:
    """Each attachment as a source of its own, through the same dispatch, in order; what it
    holds in turn follows it (flattened). Bounded: MAX_DEPTH nested mails, MAX_CHILDREN in
    all, archives not expanded (a zip attachment may be a bomb: ingest it on its own).
    `messages`: an mbox's messages, read as mail whatever their names."""
    out: list[Document | Skipped] = []
    taken: set[str] = set()
    for i, (name, data) in enumerate(attachments):
        path = _child_path(parent.path, name, taken)
        cand = Candidate(path, parent.location, parent.root, len(data),
                         ("mbox-message",) if messages else ("attachment",))
        if depth + 1 > MAX_DEPTH:
            note = f"nested: attachments deeper than {MAX_DEPTH} levels not read"
            flags.extend([note] if note not in flags else [])
            out.append(Skipped(path, parent.root, len(data), "skipped",
                               f"nested deeper than {MAX_DEPTH} levels: not read"))
            continue
        if len(out) >= MAX_CHILDREN:
            flags.append(f"cut: {len(attachments) - i:,} more parts after {MAX_CHILDREN:,}")
            break
        child = (_structured(cand, data, "eml", options, hashlib.sha256(data).hexdigest(),
                             list(cand.flags), depth) if messages
                 else _child(cand, data, options, depth + 1))
        out.append(child)
        if isinstance(child, Document):
            out.extend(child.children)
            child.children = []
    return out[:MAX_CHILDREN]


def _child(cand: Candidate, data: bytes, options: ProcessOptions,
           depth: int) -> Document | Skipped:
    """One attachment: the path rules first (as for a file on disk), then process()."""
    suffix = _suffix(cand.path.rsplit(" > ", 1)[-1])
    if suffix in ARCHIVE_SUFFIXES:
        return Skipped(cand.path, cand.root, cand.size, "skipped",
                       f"archive attachment ({suffix}): not expanded; ingest it on its own")
    if suffix in VIDEO_SUFFIXES:
        return Skipped(cand.path, cand.root, cand.size, "skipped",
                       "video attachment: not read; ingest it on its own")
    if suffix[1:] not in READERS and _looks_like_mail(data):
        return _structured(cand, data, "eml", options, hashlib.sha256(data).hexdigest(),
                           list(cand.flags), depth)
    reason = options.noise.by_path(cand.path.rsplit(" > ", 1)[-1], cand.size)
    if reason is not None and options.noise.enabled(reason):
        return Skipped(cand.path, cand.root, cand.size, "skipped", reason)
    got = process(cand, data, options, depth=depth)
    if isinstance(got, Document):
        got.flags.extend(f for f in cand.flags if f not in got.flags)
    return got


def _decoration(doc: Document) -> bool:
    """A picture too small to show anything (an icon in a repository, a mail's tracking pixel or
    signature icon): under 64 px on both sides, as embedded pictures are (ingest/embedded.py)."""
    if doc.kind != "image":
        return False
    size = re.fullmatch(r"(\d+)x(\d+)", doc.metadata.get("size", ""))
    return size is not None and decoration(int(size[1]), int(size[2]))


# what a key in a file name must hold: a long run with digits and letters (every token format
# scan() knows), or a credential's name and its value (`db_password=...`)
_NAME_RUN = re.compile(r"[A-Za-z0-9_+-]{16,}")
_NAME_VALUE = re.compile(r"(?:pass|pwd|secret|key|token)\w*[:=]", re.IGNORECASE)


def _name_may_hold(path: str) -> bool:
    """Cheap, so 1,000,000 paths cost next to nothing: scan() runs on the few that pass."""
    if _NAME_VALUE.search(path):
        return True
    return any(run.isupper() or (any(c.isdigit() for c in run) and any(c.isalpha() for c in run))
               for run in _NAME_RUN.findall(path))


def name_secrets(path: str) -> list[str]:
    """`secret:name:<kind>` for a credential in a source's path (`ghp_....md`): the path is
    the source's identity and is shown as it is, so it is flagged for the owner to rename."""
    if not _name_may_hold(path):
        return []
    found = secrets.scan(path.replace("/", "\n"), "")
    return list(dict.fromkeys(f"secret:name:{f.kind}" for f in found.findings))


def process(candidate: Candidate, data: bytes, options: ProcessOptions,
            sha: str | None = None, memo: VerdictMemo | None = None,
            depth: int = 0) -> Document | Skipped:
    """Turn bytes into a Document; noise that the filter removes becomes a Skipped. With a
    memo, the content filter's verdict is remembered by (sha256, filter options). `depth`:
    how many mails this one is attached inside. A credential in its path is flagged."""
    done = _process(candidate, data, options, sha, memo, depth)
    named = name_secrets(candidate.path) if isinstance(done, Document) else []
    if named:
        done.flags[:0] = [f for f in named if f not in done.flags]
    return done


def _process(candidate: Candidate, data: bytes, options: ProcessOptions,
             sha: str | None, memo: VerdictMemo | None, depth: int) -> Document | Skipped:
    sha = sha or hashlib.sha256(data).hexdigest()
    path, root, size = candidate.path, candidate.root, len(data)
    suffix = _suffix(path.rsplit(" > ", 1)[-1].rsplit("/", 1)[-1])[1:]
    flags: list[str] = []

    if suffix == "msg" and not data.startswith(OLE2_MAGIC):
        suffix = ""  # not Outlook's (OLE2) but a message catalog (Tcl's msgs/*.msg): text
    if suffix in READERS:
        why = html_is_source(candidate, data) if suffix in HTML_SUFFIXES else None
        if why is None:
            if suffix in HTML_SUFFIXES:
                flags.append("html:web-page")
            return _structured(candidate, data, suffix, options, sha, flags, depth, memo=memo)
        flags.append(f"html:source-code ({why})")

    if "." + suffix in IMAGE_SUFFIXES:
        from ingest.imagefiles import read_image

        read = partial(read_image, options=options.picture_options())
        got = _structured(candidate, data, suffix, options, sha, flags, depth, read, memo)
        if isinstance(got, Document) and _decoration(got):
            return Skipped(path, root, size, "skipped", f"decoration: a {got.metadata['size']} "
                           "picture (an icon, a tracking pixel)", sha)
        return got

    if suffix == "pdf":
        from ingest.pdf import read_pdf

        try:
            pdf = read_pdf(data, ocr=options.ocr, max_pages=options.max_pdf_pages,
                           pictures=options.picture_options())
        except IngestError as exc:
            return Skipped(path, root, size, "error", str(exc), sha)
        flags = list(pdf.flags)
        pages = _check_segments(list(pdf.segments), path, options, flags)
        pages = keep_pictures(pages, list(pdf.segments), pdf.pictures, options, flags)
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
        checked = _check_segments(segments, path, options, flags)
        # cells are a pure function of the bytes: counts (and the pack's stat memo) key on it
        redacted = any(a.text != b.text for a, b in zip(segments, checked, strict=True))
        return Document(path, root, "notebook", nb_language or "python", sha, size, checked,
                        flags=flags, content_key=f"{sha}|cells" + ("|redacted" if redacted
                                                                   else ""))
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
