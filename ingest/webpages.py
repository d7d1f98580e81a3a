"""Saved web pages (.html, .htm, .xhtml, .mhtml) as readable markdown: headings, paragraphs,
lists, tables, link text and code blocks, split into one part per h1/h2 section.

What a browser would not show a reader is dropped: scripts, styles, frames, the head, menus and
page headers/footers. Hidden elements (the `hidden` attribute, aria-hidden, inline display:none
or visibility:hidden) are dropped from the text too, but hidden text is where an injection hides,
so it is kept in a last part marked "[hidden]" and the read is flagged "hidden-text".

Nothing is fetched: the parser resolves no entities and loads nothing from the network, and a
link keeps its text only (a URL is noise to a reader and costs tokens). The tree is walked with
an explicit stack, so a page nested 10,000 deep cannot raise RecursionError. A saved page
(.mhtml) carries its pictures: each `<img>` shown in the text (not in menus or hidden) whose
picture is in the archive comes back as `StructuredRead.images` ("§ Results picture 1"), after
its section.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import re
from dataclasses import dataclass, field

from ingest.containers import markdown_table, safe_xml
from ingest.types import EmbeddedImage, IngestError, Segment, StructuredRead

#: not text a reader sees: dropped with everything inside
_DROP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "head", "object",
                   "embed", "canvas", "frameset", "frame", "select", "button", "input",
                   "textarea", "math", "map", "audio", "video", "link", "meta", "title", "base"})
#: page chrome: menus always, headers/footers/asides outside an article's own content
_NAV = frozenset({"nav"})
_CHROME = frozenset({"header", "footer", "aside"})
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "menu",
                           "menubar", "search"})
_CONTENT = frozenset({"article", "main"})
_BLOCK = frozenset({"p", "div", "section", "article", "main", "blockquote", "ul", "ol", "li",
                    "dl", "dt", "dd", "figure", "figcaption", "address", "hr", "body", "html",
                    "form", "fieldset", "legend", "details", "summary", "center", "caption",
                    "tr", "td", "th", "table", "tbody", "thead", "tfoot", "header", "footer",
                    "aside", "hgroup", "dialog", "menu"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|"
                           r"font-size\s*:\s*0(?![.\d])|opacity\s*:\s*0(?![.\d])", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""",
                           re.I)
_META_KEYS = {"description": "description", "author": "author", "date": "date",
              "dc.date": "date", "article:published_time": "date", "dc.creator": "author",
              "og:description": "description", "article:author": "author"}
_WORDS_PER_PART = 1500
_MAX_DEPTH = 255  # libxml2's HTML parser limit
MAX_PICTURES = 200  # picture parts of a saved page that are read


@dataclass
class _Page:
    """What a walk over one page's tree found."""

    blocks: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, text, level)
    hidden: list[str] = field(default_factory=list)
    nav_dropped: bool = False
    #: each `<img>` shown: (index of the last block before it, its src)
    images: list[tuple[int, str]] = field(default_factory=list)


def _tag(node) -> str | None:
    """The element's lowercase local name; None for comments, PIs and entity references."""
    tag = node.tag
    if tag.__class__ is not str:
        return None
    if tag[:1] == "{":
        return tag.rsplit("}", 1)[1].lower()
    return tag if tag.islower() else tag.lower()


def _is_hidden(node) -> bool:
    """Hidden from a reader by its own attributes (CSS in stylesheets is not evaluated)."""
    get = node.get
    if get("hidden") is not None:
        return True
    if (get("aria-hidden") or "").strip().lower() == "true":
        return True
    style = get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


def _is_chrome(node, tag: str, in_content: bool) -> bool:
    """A menu, or a page-level header/footer/aside (inside an article it is the article's)."""
    if tag in _NAV:
        return True
    role = (node.get("role") or "").strip().lower()
    if role in _CHROME_ROLES:
        return True
    return tag in _CHROME and not in_content


def _squash(text: str) -> str:
    return " ".join(text.split())


def _raw_text(el) -> str:
    """All text under `el` except scripts and styles, whitespace kept (for code and hidden)."""
    out: list[str] = []
    for node in el.iter():
        tag = _tag(node)
        if tag not in ("script", "style") and node.text and tag is not None:
            out.append(node.text)
        if node is not el and node.tail:
            out.append(node.tail)
    return "".join(out)


class _Walker:
    """Turns a parsed tree into markdown blocks, iteratively (no recursion)."""

    def __init__(self) -> None:
        self.page = _Page()
        self.inline: list[str] = []
        self.lists: list[list[int]] = []  # one counter per open list; [-1] for a bullet list
        self.pending_prefix = ""
        self.new_list = False  # the next item starts a list: a blank line before it

    # -- output -------------------------------------------------------------------------
    def flush(self) -> None:
        """The inline text gathered so far becomes one paragraph (or list item) block."""
        if not self.inline:
            return
        lines = [_squash(line) for line in "".join(self.inline).split("\n")]
        self.inline.clear()
        text = "\n".join(line for line in lines if line)
        if not text:
            return
        if self.pending_prefix:
            kind, text = "li", self.pending_prefix + text
            self.pending_prefix = ""
        else:
            kind = "li" if self.lists else "p"
            if self.lists:
                text = "  " * len(self.lists) + text
        if kind == "li" and self.new_list:
            kind, self.new_list = "list", False
        self.page.blocks.append((kind, text, 0))

    def add(self, text: str | None) -> None:
        if text:
            self.inline.append(text)

    def hide(self, el) -> None:
        text = _squash(_raw_text(el))
        if text:
            self.page.hidden.append(text)

    # -- walk ---------------------------------------------------------------------------
    def walk(self, root) -> _Page:
        stack: list[tuple[object, bool, bool]] = [(root, False, False)]
        while stack:
            node, leaving, in_content = stack.pop()
            if leaving:
                self.leave(node)
                continue
            tag = _tag(node)
            if tag is None or tag in _DROP:
                self.add(node.tail)
                continue
            if _is_hidden(node):
                self.hide(node)
                self.add(node.tail)
                continue
            if _is_chrome(node, tag, in_content):
                self.page.nav_dropped = True
                self.add(node.tail)
                continue
            if self.special(node, tag):
                self.add(node.tail)
                continue
            self.enter(node, tag)
            inner = in_content or tag in _CONTENT
            stack.append((node, True, inner))
            stack.extend((child, False, inner) for child in reversed(node))
        self.flush()
        return self.page

    def enter(self, node, tag: str) -> None:
        if tag in _BLOCK or tag == "br":
            if tag == "br":
                self.inline.append("\n")
            else:
                self.flush()
        if tag in ("ul", "ol", "menu"):
            self.new_list = self.new_list or not self.lists
            self.lists.append([0] if tag == "ol" else [-1])
        elif tag == "li":
            self.pending_prefix = self.bullet()
        elif tag == "code":
            self.inline.append("`")
        elif tag == "hr":
            self.page.blocks.append(("p", "---", 0))
        elif tag == "img" and len(self.page.images) < MAX_PICTURES * 5:
            self.page.images.append((len(self.page.blocks) - 1, (node.get("src") or "").strip()))
        self.add(node.text)

    def leave(self, node) -> None:
        tag = _tag(node)
        if tag == "code":
            self.inline.append("`")
        elif tag in _BLOCK:
            self.flush()
            if tag in ("ul", "ol", "menu") and self.lists:
                self.lists.pop()
            if tag == "li":
                self.pending_prefix = ""
        self.add(node.tail)

    def bullet(self) -> str:
        if not self.lists:
            return "- "
        counter = self.lists[-1]
        indent = "  " * (len(self.lists) - 1)
        if counter[0] < 0:
            return indent + "- "
        counter[0] += 1
        return f"{indent}{counter[0]}. "

    # -- headings, code, tables: read whole --------------------------------------------
    def special(self, node, tag: str) -> bool:
        if tag in _HEADINGS:
            self.flush()
            text = _squash(self.visible_text(node))
            if text:
                self.page.blocks.append(("h", "#" * _HEADINGS[tag] + " " + text, _HEADINGS[tag]))
            return True
        if tag in ("pre", "xmp", "listing", "plaintext"):
            self.flush()
            self.code_block(node)
            return True
        if tag == "table" and not _is_layout_table(node):
            self.flush()
            self.table(node)
            return True
        return False

    def visible_text(self, el) -> str:
        """Text under `el` with dropped and hidden descendants left out (hidden ones kept
        aside), iteratively."""
        out: list[str] = [el.text or ""]
        stack = [(child, False) for child in reversed(el)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                out.append(node.tail or "")
                continue
            tag = _tag(node)
            if tag is None or tag in _DROP:
                out.append(node.tail or "")
                continue
            if _is_hidden(node):
                self.hide(node)
                out.append(node.tail or "")
                continue
            out.append("\n" if tag == "br" else " " if tag in _BLOCK else "")
            out.append(node.text or "")
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node))
        return "".join(out)

    def code_block(self, node) -> None:
        code = self.visible_text(node).strip("\n")  # hidden spans inside go aside too
        if not code.strip():
            return
        fence = "```"
        while fence in code:
            fence += "`"
        self.page.blocks.append(("pre", f"{fence}\n{code}\n{fence}", 0))

    def table(self, node) -> None:
        rows: list[list[str]] = []
        for tr in _table_rows(node):
            if _is_hidden(tr):
                self.hide(tr)
                continue
            cells = [_squash(self.visible_text(cell)) for cell in tr
                     if _tag(cell) in ("td", "th")]
            if any(cells):
                rows.append(cells)
        caption = next((c for c in node if _tag(c) == "caption"), None)
        if caption is not None and _squash(self.visible_text(caption)):
            self.page.blocks.append(("p", _squash(self.visible_text(caption)), 0))
        if not rows:
            return
        width = max(len(r) for r in rows)
        if width == 1:  # a one-column table is a list of lines, not a table
            for row in rows:
                self.page.blocks.append(("p", row[0], 0))
            return
        padded = [r + [""] * (width - len(r)) for r in rows]
        self.page.blocks.append(("table", markdown_table(padded).rstrip("\n"), 0))


def _table_rows(table):
    """The table's own rows (not a nested table's), in order."""
    for child in table:
        tag = _tag(child)
        if tag == "tr":
            yield child
        elif tag in ("thead", "tbody", "tfoot"):
            for row in child:
                if _tag(row) == "tr":
                    yield row


def _is_layout_table(table) -> bool:
    """A table used to lay a page out (holding blocks, headings or tables), walked as blocks."""
    for node in table.iter():
        if node is table:
            continue
        tag = _tag(node)
        if tag in ("table", "p", "div", "ul", "ol", "pre", "blockquote") or tag in _HEADINGS:
            return True
    return False


# -- parsing ------------------------------------------------------------------------------
def _parse_html(html: str):
    """The page's root element. libxml2's HTML parser never resolves external entities or
    fetches; lxml.etree's (not lxml.html's) elements skip a Python class lookup per node."""
    from lxml import etree

    data = html.encode("utf-8", "replace")
    if not data.strip():
        return None
    # a fresh parser per page: its error log is this page's
    parser = etree.HTMLParser(no_network=True, remove_comments=True, remove_pis=True,
                              encoding="utf-8")
    try:
        root = etree.fromstring(data, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None
    if any("Excessive depth" in entry.message for entry in parser.error_log):
        # libxml2 stops reading below 256 levels: the rest would be lost without a word
        raise IngestError(f"page nested more than {_MAX_DEPTH} elements deep; refusing it")
    return root


def _decode(data: bytes) -> tuple[str, bool]:
    """The page's text: BOM, then a meta charset in its first 4 KB, else UTF-8; True when bytes
    had to be replaced."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _decode_as(data[len(bom):], codec)
    match = _META_CHARSET.search(data[:4096])
    codec = "utf-8"
    if match:
        try:
            codec = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            codec = "utf-8"
        if codec in ("utf-16-le", "utf-16-be", "utf-16", "utf-32"):  # a lie: bytes are ASCII
            codec = "utf-8"
    return _decode_as(data, codec)


def _decode_as(data: bytes, codec: str) -> tuple[str, bool]:
    try:
        return data.decode(codec), False
    except UnicodeDecodeError:
        return data.decode(codec, "replace"), True


def _metadata(root) -> dict[str, str]:
    """Title, description, author and date from the head; the page's language."""
    meta: dict[str, str] = {}
    for node in root.iter():
        tag = _tag(node)
        if tag == "title" and "title" not in meta:
            title = _squash("".join(node.itertext()))
            if title:
                meta["title"] = title[:500]
        elif tag == "meta":
            key = (node.get("name") or node.get("property") or "").strip().lower()
            field_name = _META_KEYS.get(key)
            content = _squash(node.get("content") or "")
            if field_name and content and field_name not in meta:
                meta[field_name] = content[:1000]
        elif tag == "body":
            break
    lang = (root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang") or "")
    if lang.strip():
        meta["language"] = lang.strip()[:35]
    return meta


# -- public entry points ------------------------------------------------------------------
def _join(blocks: list[tuple[str, str, int]]) -> str:
    """Blocks as markdown: list items tight, everything else a blank line apart."""
    out: list[str] = []
    previous = ""
    for kind, text, _level in blocks:
        if out:
            out.append("\n" if kind == "li" and previous in ("li", "list") else "\n\n")
        out.append(text)
        previous = kind
    return "".join(out) + "\n" if out else ""


def _hidden_text(hidden: list[str]) -> str:
    return "".join(f"[hidden] {text}\n" for text in hidden)


def _walk(root) -> _Page:
    if root is None:
        return _Page()
    return _Walker().walk(root)


def html_to_markdown(html: str) -> str:
    """An HTML document (a mail's HTML body, a page) as readable markdown. Hidden elements'
    text follows at the end as "[hidden] ..." lines, so an injection check still sees it.
    IngestError (one line) for a page nested deeper than the parser reads."""
    page = _walk(_parse_html(html))
    text = _join(page.blocks)
    hidden = _hidden_text(page.hidden)
    if hidden:
        text += ("\n" if text else "") + hidden
    return text


def xhtml_blocks(data: bytes, name: str) -> tuple[list[tuple[str, str, int]], list[str]]:
    """An XHTML document's markdown blocks (kind, text, heading level) and its hidden texts:
    what an e-book reader needs to split chapters and cite them (see `split_blocks`)."""
    page = _walk(_parse_xhtml(data, name))
    return page.blocks, page.hidden


def hidden_part(hidden: list[str]) -> str:
    """Hidden texts as the "[hidden] ..." lines of a last part."""
    return _hidden_text(hidden)


def _parse_xhtml(data: bytes, name: str):
    """XHTML through the safe XML parser (no entities, no DTD); malformed or too deep XHTML
    (common in saved pages) falls back to the forgiving HTML parser."""
    try:
        return safe_xml(data, name)
    except IngestError:
        return _parse_html(_decode(data)[0])


def _mhtml_html(data: bytes, name: str, pictures: dict[str, bytes] | None = None) -> str:
    """The first text/html part of an MHTML archive (MIME, as mail is); its picture parts
    (image/*, at most MAX_PICTURES) into `pictures`, by Content-Location and by `cid:`."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    html = None
    for part in msg.walk():
        if part.get_content_type() == "text/html" and html is None:
            try:
                html = part.get_content()
            except (LookupError, ValueError, UnicodeError):
                payload = part.get_payload(decode=True) or b""
                html = payload.decode("utf-8", "replace")
        elif part.get_content_maintype() == "image" and pictures is not None \
                and len(pictures) < MAX_PICTURES:
            _add_picture(part, pictures)
    if html is None:
        raise IngestError(f"{name}: an MHTML file without an HTML part")
    return html


def _add_picture(part, pictures: dict[str, bytes]) -> None:
    try:
        body = part.get_payload(decode=True)
        where = str(part.get("Content-Location") or "").strip()
        ident = str(part.get("Content-ID") or "").strip().strip("<>")
    except Exception:  # noqa: BLE001 a broken header or transfer encoding: the page still reads
        return
    if isinstance(body, bytes) and body:
        for key in (where, f"cid:{ident}" if ident else ""):
            if key:
                pictures.setdefault(key, body)


def _load(data: bytes, name: str, pictures: dict[str, bytes] | None = None
          ) -> tuple[object, list[str]]:
    """The parsed root and decoding flags for each web-page format (a saved page's pictures
    into `pictures`)."""
    lower = name.lower()
    if lower.endswith((".mhtml", ".mht")):
        return _parse_html(_mhtml_html(data, name, pictures)), []
    if lower.endswith((".xhtml", ".xht")):
        return _parse_xhtml(data, name), []
    text, replaced = _decode(data)
    return _parse_html(text), (["invalid-utf8"] if replaced else [])


def _images(page: _Page, ends: list[int], locators: list[str],
            pictures: dict[str, bytes]) -> list[EmbeddedImage]:
    """The page's shown pictures that the archive holds, each after its section's last part,
    cited "§ Results picture 2" (numbered in page order)."""
    out = []
    for n, (block, src) in enumerate(page.images, 1):
        data = pictures.get(src)
        if data is None:
            continue
        after = ends[block] if block >= 0 else -1
        section = locators[after].split(" ¶", 1)[0] if after >= 0 else ""
        out.append(EmbeddedImage(after, f"{section} picture {n}".strip(), data, src[:200]))
    return out


def read_webpage(data: bytes, name: str) -> StructuredRead:
    """A saved web page as parts, one per h1/h2 section ("§ <heading>", "§ (top)" before the
    first), long sections split; hidden text in a last part "hidden text"."""
    pictures: dict[str, bytes] = {}
    try:
        root, flags = _load(data, name, pictures)
    except IngestError as exc:
        message = str(exc)
        raise IngestError(message if message.startswith(name) else f"{name}: {message}") from None
    metadata = _metadata(root) if root is not None else {}
    page = _walk(root)
    parts, ends = _sections(page.blocks)
    images = _images(page, ends, [loc for loc, _ in parts], pictures) if pictures else []
    if page.hidden:
        parts.append(("hidden text", _hidden_text(page.hidden)))
        flags.append("hidden-text")
    if page.nav_dropped:
        flags.append("menus-dropped")
    if not page.blocks:
        flags.append("no-readable-text")
    segments = [Segment(order=i, text=text, span_kind="part", start=i + 1, end=i + 1,
                        locator=locator) for i, (locator, text) in enumerate(parts)]
    return StructuredRead(kind="web", segments=segments, metadata=metadata, flags=flags,
                          images=images)


def _sections(blocks: list[tuple[str, str, int]]) -> tuple[list[tuple[str, str]], list[int]]:
    """(locator, text) per h1/h2 section, a long one split by paragraphs; and for each block,
    the index of its section's last part (where a picture in it goes)."""
    sections: list[tuple[str, list[tuple[str, str, int]]]] = []
    for block in blocks:
        kind, text, level = block
        if kind == "h" and level <= 2:
            sections.append(("§ " + text.lstrip("#").strip()[:120], [block]))
        elif not sections:
            sections.append(("§ (top)", [block]))
        else:
            sections[-1][1].append(block)
    parts: list[tuple[str, str]] = []
    ends: list[int] = []
    for locator, section in sections:
        parts.extend(split_blocks(locator, section))
        ends += [len(parts) - 1] * len(section)
    return parts, ends


def split_blocks(locator: str, blocks: list[tuple[str, str, int]],
                 limit: int = _WORDS_PER_PART) -> list[tuple[str, str]]:
    """A section as one part, or as several of at most ~`limit` words each, suffixed with
    their paragraph range ("§ Results ¶1-¶14"); a single block too long for a part (a page
    that is one paragraph, a long table or listing) is cut first."""
    blocks = [piece for block in blocks for piece in _fit(block, limit)]
    chunks: list[tuple[int, int]] = []
    start, words = 0, 0
    for i, (_kind, text, _level) in enumerate(blocks):
        count = _size(text)
        if words and words + count > limit:
            chunks.append((start, i))
            start, words = i, 0
        words += count
    chunks.append((start, len(blocks)))
    if len(chunks) == 1:
        return [(locator, _join(blocks))]
    return [(f"{locator} ¶{a + 1}-¶{b}", _join(blocks[a:b])) for a, b in chunks]


def _size(text: str) -> int:
    """Words, or characters / 6 for text with few spaces (a blob counts by its length)."""
    return max(len(text.split()), len(text) // 6)


def _fit(block: tuple[str, str, int], limit: int) -> list[tuple[str, str, int]]:
    """The block, or its pieces of at most ~`limit` words: a table keeps its header in each
    piece, a code listing its fence."""
    kind, text, level = block
    if _size(text) <= limit:
        return [block]
    lines = text.split("\n")
    head: list[str] = []
    tail: list[str] = []
    if kind == "table" and len(lines) > 2:
        head, lines = lines[:2], lines[2:]
    elif kind == "pre" and len(lines) > 2:
        head, lines, tail = lines[:1], lines[1:-1], lines[-1:]
    pieces: list[tuple[str, str, int]] = []
    group: list[str] = []
    words = 0
    for line in (cut for whole in lines for cut in _cut_line(whole, limit)):
        if group and words + _size(line) > limit:
            pieces.append((kind, "\n".join(head + group + tail), level))
            group, words = [], 0
        group.append(line)
        words += _size(line)
    pieces.append((kind, "\n".join(head + group + tail), level))
    return pieces


def _cut_line(line: str, limit: int) -> list[str]:
    """A line too long for one part cut at spaces (or anywhere, for a blob without any)."""
    width = limit * 6
    out: list[str] = []
    while len(line) > width:
        cut = line.rfind(" ", 0, width)
        if cut <= width // 2:
            cut = width
        out.append(line[:cut])
        line = line[cut:].lstrip(" ")
    out.append(line)
    return out
