"""Mail: an .eml message or an .mbox mailbox read into citable parts (issue 24).

A message gives two kinds of part: its headers (From, To, Cc, Date, Subject, decoded from
RFC 2047, unknown charsets read as UTF-8 with replacement, never a traceback) and its body
(text/plain preferred, else the HTML as text). Its attachments come back as (name, bytes):
ingest/documents.py reads each as a document of its own under the mail, with the same
dispatch, nesting bounded there. An mbox gives an index of its messages as its own text and
each message, in order, as an attachment named `2026-03-02 "Q3 launch"`, read as mail.

Headers are bounded (MAX_HEADER_BYTES): a header of 10 MB of folded lines is cut, flagged.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime

from ingest.types import IngestError, Segment, StructuredRead

MAX_HEADER_BYTES = 64 * 1024  # a message's whole header block (real ones: a few KB)
MAX_VALUE_CHARS = 2_000  # one header as shown
MAX_PART_WORDS = 1_500  # a longer body is split into several parts
MAX_MESSAGES = 20_000  # in one mbox
INDEX_LINES = 200  # messages per part of an mbox's index
SHOWN = ("From", "To", "Cc", "Date", "Subject")
#: a message starts at a "From " line at the top or after a blank line (bodies escape theirs)
_MBOX_SPLIT = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\r\n\r\n))From [^\n]*\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def read_mail(data: bytes, name: str) -> StructuredRead:
    """An .eml (one message) or an .mbox (messages in order) as a StructuredRead."""
    if name.lower().endswith(".mbox") or data.startswith(b"From "):
        return _read_mbox(data, name)
    return _read_message(data, name)


# -- one message -----------------------------------------------------------------------------

def _bounded(data: bytes) -> tuple[bytes, list[str]]:
    """The message with its header block cut to MAX_HEADER_BYTES (at a line end), flagged."""
    found = _HEADER_END.search(data)
    header_bytes = found.start() if found else len(data)
    if header_bytes <= MAX_HEADER_BYTES:
        return data, []
    body = data[found.end():] if found else b""
    kept = data[:MAX_HEADER_BYTES]
    kept = kept[:kept.rfind(b"\n") + 1]
    return (kept.rstrip(b"\r\n") + b"\n\n" + body,
            [f"header-cut: {header_bytes:,} header bytes, kept {len(kept):,}"])


def _parse(data: bytes, name: str) -> tuple[EmailMessage, list[str]]:
    data, flags = _bounded(data)
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
    except (RecursionError, MemoryError):
        raise IngestError(f"{name}: a message nested too deeply to read") from None
    except Exception as exc:  # noqa: BLE001 the parser on hostile bytes: one line
        raise IngestError(f"{name}: not a readable mail ({type(exc).__name__})") from None
    return msg, flags  # type: ignore[return-value]


def header(msg: Message, key: str, flags: list[str] | None = None) -> str:
    """A header decoded (RFC 2047), on one line, bounded; odd charsets read with replacement."""
    try:
        raw = msg.get(key)
        value = "" if raw is None else str(raw)
    except Exception:  # noqa: BLE001 an unknown charset or a malformed encoded word
        value = _decode_loosely(msg, key)
        if flags is not None and value:
            flags.append(f"header:{key.lower()}: undecodable parts read with replacement")
    value = " ".join(value.split())
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS - 1] + "…"


def _decode_loosely(msg: Message, key: str) -> str:
    raw = msg.get_all(key, failobj=[])
    text = " ".join(str(getattr(r, "_parse_tree", r)) if not isinstance(r, str) else r
                    for r in raw)
    try:
        return str(make_header(decode_header(text)))
    except Exception:  # noqa: BLE001
        pieces = []
        for chunk, charset in _safe_decode_header(text):
            pieces.append(chunk.decode(_charset(charset), "replace")
                          if isinstance(chunk, bytes) else chunk)
        return "".join(pieces)


def _safe_decode_header(text: str) -> list[tuple[bytes | str, str | None]]:
    try:
        return decode_header(text)
    except Exception:  # noqa: BLE001
        return [(text, None)]


def _charset(name: str | None) -> str:
    import codecs

    try:
        return codecs.lookup(name or "utf-8").name
    except (LookupError, TypeError):
        return "utf-8"


def _text_of(part: Message, flags: list[str]) -> str:
    """A text part's content as str: its charset, else UTF-8 with replacement (flagged)."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except Exception:  # noqa: BLE001 LookupError (unknown charset), bad transfer encoding
        pass
    payload = part.get_payload(decode=True) or b""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    if _charset(charset) != charset.lower().replace("_", "-") and _charset(charset) == "utf-8":
        flags.append(f"charset:{charset[:40]}: unknown, read as UTF-8")
    return payload.decode(_charset(charset), "replace")


def _html_text(markup: str) -> str:
    """HTML as markdown by the web-page reader; a plain tag strip until it is there."""
    try:
        from ingest.webpages import html_to_markdown
    except ImportError:
        return _strip_tags(markup)
    try:
        return html_to_markdown(markup)
    except Exception:  # noqa: BLE001 a hostile page: fall back rather than lose the mail
        return _strip_tags(markup)


def _strip_tags(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6])\s*>", "\n", markup)
    text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _is_attachment(part: Message) -> bool:
    return (part.get_content_disposition() == "attachment" or bool(part.get_filename())
            or part.get_content_type() == "message/rfc822"
            or part.get_content_maintype() not in ("text", "multipart"))


def _leaves(msg: Message):
    """The non-multipart parts in order, attached messages as leaves (not entered)."""
    if msg.is_multipart() and msg.get_content_type() != "message/rfc822":
        for sub in msg.get_payload():  # type: ignore[union-attr]
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield msg


def _body(msg: EmailMessage, flags: list[str]) -> str:
    """text/plain preferred, else the HTML as text; inline text parts outside the chosen
    alternative (a list's footer, a second note) follow it."""
    try:
        chosen = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        chosen = None
    texts = []
    if chosen is not None:
        texts.append(_as_text(chosen, flags))
    for part in _leaves(msg):
        if part is chosen or _is_attachment(part) or part.get_content_maintype() != "text":
            continue
        if chosen is not None and _in_alternative(msg, part):
            continue
        texts.append(_as_text(part, flags))
    return "\n\n".join(t.strip() for t in texts if t.strip())


def _in_alternative(msg: Message, part: Message) -> bool:
    for container in msg.walk():
        if container.get_content_type() == "multipart/alternative" and any(
                p is part for p in container.walk()):
            return True
    return False


def _as_text(part: Message, flags: list[str]) -> str:
    text = _text_of(part, flags)
    return _html_text(text) if part.get_content_subtype() == "html" else text


def _attachments(msg: EmailMessage, flags: list[str]) -> list[tuple[str, bytes]]:
    out = []
    for i, part in enumerate(_leaves(msg), 1):
        if part is msg or not _is_attachment(part):
            continue
        got = _attachment(part, i)
        if got is None:
            flags.append(f"attachment {i}: unreadable, left out")
        else:
            out.append(got)
    return out


def _attachment(part: Message, i: int) -> tuple[str, bytes] | None:
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        name = ""
    name = " ".join(name.replace("/", "∕").replace("\\", "∕").split())[:200]
    try:
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            data = inner.as_bytes(policy=policy.default) if isinstance(inner, Message) else b""
            subject = header(inner, "Subject") if isinstance(inner, Message) else ""
            return (name or f"{subject or f'message {i}'}.eml"[:200]), data
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 a broken transfer encoding or a nested message
        return None
    if not isinstance(data, bytes):
        return None
    if not name:
        ext = {"text/plain": ".txt", "text/html": ".html", "application/pdf": ".pdf",
               # an HTML mail's inline pictures (cid:) come without a file name
               "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
               "image/webp": ".webp", "image/bmp": ".bmp", "image/tiff": ".tif"}.get(
            part.get_content_type(), "")
        name = f"attachment {i}{ext}"
    return name, data


def _split_words(text: str, locator: str, start: int) -> list[tuple[str, str]]:
    """A long body as several parts of at most MAX_PART_WORDS words, cut at paragraphs."""
    paragraphs = re.split(r"\n\s*\n", text)
    chunks, current, words = [], [], 0
    for para in paragraphs:
        n = len(para.split())
        if current and words + n > MAX_PART_WORDS:
            chunks.append("\n\n".join(current))
            current, words = [], 0
        current.append(para)
        words += n
    if current:
        chunks.append("\n\n".join(current))
    if len(chunks) == 1:
        return [(chunks[0], locator)]
    return [(c, f"{locator} ({k}/{len(chunks)})") for k, c in enumerate(chunks, 1)]


def _read_message(data: bytes, name: str) -> StructuredRead:
    msg, flags = _parse(data, name)
    meta = {key.lower(): v for key in (*SHOWN, "Message-ID") if (v := header(msg, key, flags))}
    attachments = _attachments(msg, flags)
    return as_mail(meta, attachments, flags, lambda: _body(msg, flags))


def as_mail(meta: dict[str, str], attachments: list[tuple[str, bytes]], flags: list[str],
            body: Callable[[], str]) -> StructuredRead:
    """One message's parts, whatever file it came from (.eml, .msg): a "headers" part (the
    SHOWN headers, then its attachments' names) and its body in "body" parts."""
    lines = [f"{key}: {meta[key.lower()]}" for key in SHOWN if key.lower() in meta]
    if attachments:
        lines.append("Attachments: " + ", ".join(n for n, _ in attachments))
        flags.append(f"attachments:{len(attachments)}")
    parts = [("\n".join(lines) or "(no headers)", "headers")]
    text = body()
    if text:
        parts.extend(_split_words(text, "body", 2))
    segments = [Segment(order=i, text=text.rstrip("\n") + "\n", span_kind="part", start=i + 1,
                        end=i + 1, locator=loc) for i, (text, loc) in enumerate(parts)]
    return StructuredRead("mail", segments, meta, flags, attachments)


# -- a mailbox -------------------------------------------------------------------------------

def label(msg: Message) -> str:
    """How a message is named under its mailbox: `2026-03-02 "Q3 launch"`."""
    try:
        day = parsedate_to_datetime(header(msg, "Date")).date().isoformat()
    except Exception:  # noqa: BLE001 no date, or a date nobody can read
        day = "undated"
    subject = header(msg, "Subject")[:80] or "(no subject)"
    return f'{day} "{subject}"'


def _messages(data: bytes) -> list[bytes]:
    """An mbox's messages (mboxrd: ">From " lines in bodies are unescaped one level)."""
    found = list(_MBOX_SPLIT.finditer(data))
    out = []
    for k, m in enumerate(found):
        begin, end = m.end(), found[k + 1].start() if k + 1 < len(found) else len(data)
        out.append(re.sub(rb"(?m)^>(>*From )", rb"\1", data[begin:end]))
    return out


def _read_mbox(data: bytes, name: str) -> StructuredRead:
    messages = _messages(data)
    if not messages:
        raise IngestError(f"{name}: an mbox without a message (no 'From ' line)")
    flags = [f"messages:{len(messages)}"]
    if len(messages) > MAX_MESSAGES:
        flags.append(f"cut: messages after {MAX_MESSAGES:,} not read "
                     f"({len(messages) - MAX_MESSAGES:,} more)")
        messages = messages[:MAX_MESSAGES]
    parser = BytesHeaderParser(policy=policy.default)
    attachments, index = [], []
    for i, raw in enumerate(messages, 1):
        try:
            head = parser.parsebytes(_bounded(raw)[0])
            shown, sender = label(head), header(head, "From")
        except Exception:  # noqa: BLE001 one broken message does not lose the others
            shown, sender = f"message {i}", ""
        attachments.append((shown, raw))
        index.append(f"{i}. {shown}" + (f" from {sender}" if sender else ""))
    segments = []
    for k in range(0, len(index), INDEX_LINES):
        chunk = index[k:k + INDEX_LINES]
        locator = f"messages {k + 1}-{k + len(chunk)}"
        title = f"# {name.rsplit('/', 1)[-1]}: {len(index)} messages\n\n" if k == 0 else ""
        segments.append(Segment(order=len(segments), text=title + "\n".join(chunk) + "\n",
                                span_kind="part", start=len(segments) + 1,
                                end=len(segments) + 1, locator=locator))
    return StructuredRead("mail", segments, {"messages": str(len(index))}, flags, attachments)
