"""Office files and e-books are zip archives: the archive limits apply before any reader opens
one, and what a container may do beyond holding text (run macros, fetch a remote template or a
linked picture) is flagged, never done.

Every structured reader (Word, PowerPoint, spreadsheets, OpenDocument, EPUB) calls `open_zip`
on the bytes first, then `container_flags` for the flags, and parses XML only through
`safe_xml` (no entity expansion, no external entities, no network, bounded size).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterable

from ingest.archives import ArchiveLimits
from ingest.types import IngestError

#: a document container is one file: tighter than an archive of many
DOCUMENT_LIMITS = ArchiveLimits(max_total_bytes=512 * 1024**2, max_file_bytes=256 * 1024**2,
                                max_members=20_000)
_MAX_XML_BYTES = 256 * 1024**2
_MACRO_PARTS = re.compile(r"(^|/)(vbaProject\.bin|vbaData\.xml|activeX/|macrosheets/)", re.I)
_EXTERNAL = re.compile(rb'<Relationship\b[^>]*\bTargetMode="External"[^>]*>', re.I)
_TARGET = re.compile(rb'\bTarget="([^"]*)"')
_TYPE = re.compile(rb'\bType="[^"]*/([A-Za-z]+)"')


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def open_zip(data: bytes, what: str, limits: ArchiveLimits = DOCUMENT_LIMITS) -> zipfile.ZipFile:
    """The container as a ZipFile once its declared sizes pass the archive limits; IngestError
    (one line) for a file that is not a zip, is encrypted, or would expand like a bomb."""
    if data[:4] == b"\xd0\xcf\x11\xe0":  # OLE2: a legacy .doc/.xls, or an encrypted OOXML file
        raise IngestError(f"{what}: password-protected or a legacy binary Office file "
                          "(save it as .docx/.xlsx/.pptx to ingest it)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            NotImplementedError) as exc:  # NotImplementedError: an unknown zip version
        raise IngestError(f"{what}: not a readable file ({exc})") from None
    if len(infos) > limits.max_members:
        raise IngestError(f"{what}: more than {limits.max_members:,} parts; refusing it")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise IngestError(f"{what}: password-protected")
        size = info.file_size
        if size > limits.max_file_bytes:
            raise IngestError(f"{what}: a part expands to {_human(size)}, over the limit of "
                              f"{_human(limits.max_file_bytes)}")
        if (size > limits.ratio_min_bytes and info.compress_size
                and size / info.compress_size > limits.max_ratio):
            raise IngestError(f"{what}: a part expands {size / info.compress_size:.0f}x "
                              f"(limit {limits.max_ratio:.0f}x); a likely zip bomb")
        total += size
    if total > limits.max_total_bytes:
        raise IngestError(f"{what}: expands to {_human(total)}, over the limit of "
                          f"{_human(limits.max_total_bytes)}")
    if total > limits.ratio_min_bytes and total / max(len(data), 1) > limits.max_ratio:
        raise IngestError(f"{what}: expands {total / max(len(data), 1):.0f}x its size "
                          f"(limit {limits.max_ratio:.0f}x); a likely zip bomb")
    return zf


def read_part(zf: zipfile.ZipFile, name: str, what: str) -> bytes:
    """One part's bytes, read no further than its declared size (headers can lie)."""
    try:
        info = zf.getinfo(name)
        with zf.open(info) as fh:
            data = fh.read(min(info.file_size, _MAX_XML_BYTES) + 1)
    except KeyError:
        raise IngestError(f"{what}: has no {name}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError,
            zlib.error) as exc:  # zlib.error: a damaged deflate stream
        raise IngestError(f"{what}: {name} is damaged ({exc})") from None
    if len(data) > min(info.file_size, _MAX_XML_BYTES):
        raise IngestError(f"{what}: {name} is larger than it declares; refusing it")
    return data


def container_flags(zf: zipfile.ZipFile) -> list[str]:
    """`macros` when the container carries VBA or ActiveX parts (never run), and one
    `external:<type>:<target>` per relationship that points outside the file (a remote
    template, a linked picture, an OLE link: never fetched)."""
    names = zf.namelist()
    flags: list[str] = []
    if any(_MACRO_PARTS.search(n) for n in names):
        flags.append("macros")
    seen: set[str] = set()
    for name in names:
        if not name.endswith(".rels"):
            continue
        try:
            rels = read_part(zf, name, "container")
        except IngestError:
            continue
        for rel in _EXTERNAL.findall(rels):
            target = _TARGET.search(rel)
            kind = _TYPE.search(rel)
            flag = "external:{}:{}".format(
                kind.group(1).decode("ascii", "replace") if kind else "link",
                target.group(1).decode("utf-8", "replace")[:200] if target else "?")
            if flag not in seen:
                seen.add(flag)
                flags.append(flag)
    return flags[:50]


def safe_xml(data: bytes, what: str):
    """An lxml element tree parsed without entity expansion, external entities, DTD loading or
    network access; IngestError for malformed XML."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise IngestError(f"{what}: malformed XML ({exc.msg})") from None


def markdown_table(rows: Iterable[list[str]]) -> str:
    """Rows of cell texts as a markdown table (the first row is the header); pipes and line
    breaks inside cells are escaped so a cell cannot break the table."""
    out: list[str] = []
    width = 0
    for i, row in enumerate(rows):
        cells = [str(c).replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()
                 for c in row]
        width = max(width, len(cells))
        out.append("| " + " | ".join(cells) + " |")
        if i == 0:
            out.append("|" + "---|" * max(len(cells), 1))
    return "\n".join(out) + ("\n" if out else "")
