"""EPUB e-books, chapter by chapter in spine order, each cited as "ch. <n> <title>".

The book is read from its own structure (META-INF/container.xml -> the OPF package -> the
spine) rather than through PyMuPDF: PyMuPDF lays an EPUB out into screen pages, so a chapter
would be cut wherever a page ends, and the chapter titles from the table of contents are lost.
Reading the spine keeps chapters exact and costs no layout. EPUB is a zip: the archive limits
apply (ingest.containers.open_zip) and every XML part goes through safe_xml (no entities).
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

from ingest.containers import container_flags, open_zip, read_part, safe_xml
from ingest.types import IngestError, Segment, StructuredRead
from ingest.webpages import hidden_part, split_blocks, xhtml_blocks

_CONTAINER = "META-INF/container.xml"
_DC_FIELDS = {"title": "title", "creator": "author", "date": "date", "language": "language",
              "publisher": "publisher"}
_TEXT_TYPES = ("application/xhtml+xml", "text/html", "application/xml", "text/xml",
               "application/x-dtbook+xml")
_CONTENT_SUFFIX = re.compile(r"\.(x?html?|xml)$", re.I)
_MAX_FLAGS = 50


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _children(el, name: str):
    """Descendants of `el` with this local name, whatever their namespace."""
    return (node for node in el.iter() if _local(node.tag) == name)


def _text(el) -> str:
    return " ".join("".join(el.itertext()).split())


def _inside(base: str, href: str) -> str | None:
    """`href` (relative to the folder `base`) as a path inside the book, or None when it is
    absolute, a URL, or climbs out of the book."""
    href = unquote(href.split("#", 1)[0].strip())
    if not href or href.startswith(("/", "\\")) or ":" in href or "\\" in href:
        return None
    path = posixpath.normpath(posixpath.join(base, href))
    if path.startswith("../") or path == ".." or path.startswith("/"):
        return None
    return path


def _opf_path(zf, name: str) -> str:
    """Where the package document is, from container.xml (or the book's only .opf)."""
    if _CONTAINER not in zf.namelist():
        opfs = [n for n in zf.namelist() if n.lower().endswith(".opf")]
        if len(opfs) != 1:
            raise IngestError(f"{name}: not an EPUB (no {_CONTAINER})")
        full = opfs[0]
    else:
        root = safe_xml(read_part(zf, _CONTAINER, name), f"{name} {_CONTAINER}")
        full = next((r.get("full-path") for r in _children(root, "rootfile")
                     if r.get("full-path")), None)
        if not full:
            raise IngestError(f"{name}: {_CONTAINER} names no package document")
    path = _inside("", full)
    if path is None:
        raise IngestError(f"{name}: the package path {full[:100]!r} points outside the book; "
                          "refusing it")
    return path


def _refuse_drm(zf, name: str) -> None:
    """A book whose chapters are encrypted (DRM) reads as noise: refuse it in one line.
    (Obfuscated fonts, also listed in encryption.xml, are harmless.)"""
    if "META-INF/encryption.xml" not in zf.namelist():
        return
    root = safe_xml(read_part(zf, "META-INF/encryption.xml", name), f"{name} encryption.xml")
    for ref in _children(root, "cipherreference"):
        if _CONTENT_SUFFIX.search(ref.get("URI") or ""):
            raise IngestError(f"{name}: DRM-protected (its chapters are encrypted)")


def _metadata(opf) -> dict[str, str]:
    meta: dict[str, str] = {}
    for node in opf.iter():
        key = _DC_FIELDS.get(_local(node.tag))
        if key is None or not str(node.tag).startswith("{http://purl.org/dc/"):
            continue
        value = _text(node)[:500]
        if not value:
            continue
        if key == "author" and "author" in meta:
            meta["author"] = f"{meta['author']}; {value}"[:1000]
        else:
            meta.setdefault(key, value)
    return meta


def _manifest(opf, base: str, flags: list[str]) -> dict[str, tuple[str, str, str]]:
    """id -> (path in the book, media type, properties); unsafe hrefs flagged and left out."""
    items: dict[str, tuple[str, str, str]] = {}
    for item in _children(opf, "item"):
        ident, href = item.get("id"), item.get("href") or ""
        path = _inside(base, href)
        if path is None:
            _flag(flags, f"unsafe-href:{href[:100]}")
            continue
        if ident:
            items[ident] = (path, (item.get("media-type") or "").lower(),
                            item.get("properties") or "")
    return items


def _flag(flags: list[str], flag: str) -> None:
    if len(flags) < _MAX_FLAGS and flag not in flags:
        flags.append(flag)


def _toc_titles(zf, opf, items, name: str) -> dict[str, str]:
    """Chapter path -> its title in the table of contents (EPUB 3 nav, else EPUB 2 NCX)."""
    titles: dict[str, str] = {}
    spine = next(_children(opf, "spine"), None)
    ncx_id = spine.get("toc") if spine is not None else None
    for ident, (path, media, props) in items.items():
        is_nav = "nav" in props.split()
        is_ncx = media == "application/x-dtbncx+xml" or ident == ncx_id
        if not (is_nav or is_ncx) or path not in zf.namelist():
            continue
        try:
            root = safe_xml(read_part(zf, path, name), f"{name} {path}")
        except IngestError:
            continue
        base = posixpath.dirname(path)
        pairs = (((p.get("src") or "", p) for p in _children(root, "content")) if is_ncx
                 else ((a.get("href") or "", a) for a in _children(root, "a")))
        for href, node in pairs:
            target = _inside(base, href)
            label = _ncx_label(node) if is_ncx else _text(node)
            if target and label:
                titles.setdefault(target, label[:120])
    return titles


def _ncx_label(content) -> str:
    """The navLabel text of the navPoint a <content src> belongs to."""
    point = content.getparent()
    label = next(_children(point, "navlabel"), None) if point is not None else None
    return _text(label) if label is not None else ""


def _spine(opf, items, zf, flags: list[str]) -> list[str]:
    """The chapters' paths in reading order; a spine entry with no file is flagged, skipped."""
    names = set(zf.namelist())
    paths: list[str] = []
    for ref in _children(opf, "itemref"):
        idref = ref.get("idref") or ""
        item = items.get(idref)
        if item is None:
            _flag(flags, f"missing-chapter:{idref[:100]}")
            continue
        path, media, _props = item
        if path not in names:
            _flag(flags, f"missing-chapter:{path[:100]}")
            continue
        if media and media not in _TEXT_TYPES:
            continue  # an image or other non-text spine item
        if path not in paths:
            paths.append(path)
    return paths


def _first_heading(blocks) -> str:
    return next((text.lstrip("#").strip()[:120] for kind, text, _ in blocks if kind == "h"), "")


def read_epub(data: bytes, name: str) -> StructuredRead:
    """An EPUB as one part per chapter ("ch. 3 The Crossing"; a long chapter split with its
    paragraph range), its OPF metadata, and hidden text in a last part."""
    zf = open_zip(data, name)
    flags = container_flags(zf)
    _refuse_drm(zf, name)
    opf_path = _opf_path(zf, name)
    opf = safe_xml(read_part(zf, opf_path, name), f"{name} {opf_path}")
    items = _manifest(opf, posixpath.dirname(opf_path), flags)
    chapters = _spine(opf, items, zf, flags)
    if not chapters:
        raise IngestError(f"{name}: an EPUB with no readable chapters")
    titles = _toc_titles(zf, opf, items, name)
    parts: list[tuple[str, str]] = []
    hidden: list[str] = []
    number = 0
    for path in chapters:
        try:
            blocks, chapter_hidden = xhtml_blocks(read_part(zf, path, name), f"{name} {path}")
        except IngestError:
            _flag(flags, f"unreadable-chapter:{path[:100]}")
            continue
        hidden.extend(chapter_hidden)
        if not blocks:
            continue  # a cover picture, a blank page
        number += 1
        title = titles.get(path) or _first_heading(blocks)
        locator = f"ch. {number} {title}".strip()
        parts.extend(split_blocks(locator, blocks))
    if hidden:
        parts.append(("hidden text", hidden_part(hidden)))
        _flag(flags, "hidden-text")
    if not number:
        _flag(flags, "no-readable-text")
    segments = [Segment(order=i, text=text, span_kind="part", start=i + 1, end=i + 1,
                        locator=locator) for i, (locator, text) in enumerate(parts)]
    return StructuredRead(kind="ebook", segments=segments, metadata=_metadata(opf), flags=flags)
