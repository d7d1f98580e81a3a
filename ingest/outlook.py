"""Outlook .msg files (MS-OXMSG: an OLE2 compound file) read as mail (issue 24).

The same parts and locators as an .eml (ingest/mail.py): a "headers" part (From, To, Cc, Date,
Subject, Attachments) and the body ("body", split like mail's when long): the plain body,
else the HTML body as markdown. Attachments come back as (name, bytes) for ingest/documents.py
to read under the mail; an attached message (a storage inside this file) comes back as an .eml
of its headers, body and attachments (MAX_EMBEDDED levels deep at most); an OLE object is
flagged, not read. olefile parses the compound file; every read is capped, and a file that is
not OLE2, is damaged (a stream shorter than its directory says) or is not a message is one
IngestError line. A .msg without the OLE2 signature is a message catalog (Tcl's msgs/*.msg):
ingest/documents.py reads it as text and never calls this reader.
"""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime

from ingest.mail import MAX_VALUE_CHARS, SHOWN, _html_text, as_mail
from ingest.types import IngestError, StructuredRead

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_STRING_BYTES = 32 * 1024 * 1024  # one string or body property as read
MAX_ATTACHMENTS = 200
MAX_ATTACHMENT_BYTES = 256 * 1024 * 1024  # as a document on its own (filters.py)
MAX_EMBEDDED = 5  # a message attached in a message ...: deeper ones are flagged, not read
MAX_PROPERTY_ENTRIES = 4_096  # entries read from one fixed-size property stream
_SUBSTG = "__substg1.0_"
_PROPS = "__properties_version1.0"
_ATTACH = "__attach_version1.0_#"
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
#: property ids (MS-OXPROPS) of the message, its attachments and attached messages
_SUBJECT, _SENDER_NAME, _SENDER_ADDR, _SENDER_SMTP = 0x0037, 0x0C1A, 0x0C1F, 0x5D01
_DISPLAY_TO, _DISPLAY_CC, _BODY, _HTML, _MESSAGE_ID = 0x0E04, 0x0E03, 0x1000, 0x1013, 0x1035
_SUBMIT_TIME, _DELIVERY_TIME, _CODEPAGE, _INTERNET_CPID = 0x0039, 0x0E06, 0x3FFD, 0x3FDE
_DISPLAY_NAME, _LONG_NAME, _SHORT_NAME = 0x3001, 0x3707, 0x3704
_ATTACH_DATA, _ATTACH_METHOD = 0x3701, 0x3705


def is_msg(data: bytes) -> bool:
    """An OLE2 compound file (what an Outlook .msg is); a text .msg (a message catalog) is not."""
    return data.startswith(OLE_MAGIC)


def read_msg(data: bytes, name: str) -> StructuredRead:
    """An Outlook message as a StructuredRead of kind "mail"."""
    import olefile

    if not is_msg(data):
        raise IngestError(f"{name}: not an Outlook message (no OLE2 compound-file signature)")
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 olefile on damaged bytes: one line
        raise IngestError(f"{name}: a damaged Outlook message ({_why(exc)})") from None
    try:
        return _read(_Storage(ole, []), name)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 a broken sector chain deep in the file
        raise IngestError(f"{name}: a damaged Outlook message ({_why(exc)})") from None
    finally:
        ole.close()


def _why(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:120]


class _Storage:
    """One storage of the compound file (the message's root, an attachment): its
    properties by id, strings decoded with the message's code page."""

    def __init__(self, ole, path: list[str], header: int = 32, codepage: str = "cp1252"):
        self.ole, self.path, self.header, self.codepage = ole, path, header, codepage
        self.fixed = self._fixed()

    def child(self, name: str, header: int) -> _Storage:
        return _Storage(self.ole, [*self.path, name], header, self.codepage)

    def kind(self, name: str) -> int | bool:
        return self.ole.exists([*self.path, name]) and self.ole.get_type([*self.path, name])

    def stream(self, name: str, cap: int = MAX_STRING_BYTES) -> bytes | None:
        import olefile

        if self.kind(name) != olefile.STGTY_STREAM:
            return None
        with self.ole.openstream([*self.path, name]) as fh:
            got = fh.read(cap)
        size = min(self.ole.get_size([*self.path, name]), cap)
        if len(got) < size:  # olefile pads nothing and says nothing: a truncated file
            raise ValueError(f"{name} ends early ({len(got):,} of {size:,} bytes)")
        return got

    def _fixed(self) -> dict[int, bytes]:
        """The fixed-size properties: id -> their 8-byte value."""
        raw = self.stream(_PROPS, self.header + 16 * MAX_PROPERTY_ENTRIES) or b""
        out = {}
        for at in range(self.header, len(raw) - 15, 16):
            tag = struct.unpack_from("<I", raw, at)[0]
            out.setdefault(tag >> 16, raw[at + 8:at + 16])
        return out

    def number(self, pid: int) -> int | None:
        value = self.fixed.get(pid)
        return struct.unpack_from("<I", value)[0] if value else None

    def time(self, pid: int) -> datetime | None:
        value = self.fixed.get(pid)
        ticks = struct.unpack_from("<Q", value)[0] if value else 0
        try:
            return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10) if ticks else None
        except OverflowError:
            return None

    def string(self, pid: int) -> str:
        """A string property: unicode (001F) or 8-bit (001E, the code page), NULs stripped."""
        raw = self.stream(f"{_SUBSTG}{pid:04X}001F")
        if raw is not None:
            return raw.decode("utf-16-le", "replace").replace("\0", "")
        raw = self.stream(f"{_SUBSTG}{pid:04X}001E")
        return "" if raw is None else raw.decode(self.codepage, "replace").replace("\0", "")

    def binary(self, pid: int, cap: int = MAX_STRING_BYTES) -> bytes | None:
        return self.stream(f"{_SUBSTG}{pid:04X}0102", cap)


def _codepage(number: int | None) -> str | None:
    import codecs

    if not number:
        return None
    name = {65001: "utf-8", 1200: "utf-16-le", 20127: "ascii"}.get(number, f"cp{number}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _one_line(value: str) -> str:
    value = " ".join(value.split())
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS - 1] + "…"


def _read(root: _Storage, name: str) -> StructuredRead:
    if not root.fixed and not any(e[0].startswith(_SUBSTG) for e in root.ole.listdir()):
        raise IngestError(f"{name}: an OLE2 file that is not an Outlook message")
    root.codepage = _codepage(root.number(_CODEPAGE)) or "cp1252"
    flags: list[str] = []
    meta = _headers(root)
    attachments = _attachments(root, flags)
    return as_mail(meta, attachments, flags, lambda: _body(root, flags))


def _headers(root: _Storage) -> dict[str, str]:
    """from/to/cc/date/subject (and message-id) as mail.py names them."""
    sender = root.string(_SENDER_NAME).strip()
    address = (root.string(_SENDER_SMTP) or root.string(_SENDER_ADDR)).strip()
    if sender and "@" not in address:
        address = ""  # an Exchange (X.500) address beside a name says nothing more
    shown = f"{sender} <{address}>" if sender and address and sender != address else (
        sender or address)
    when = root.time(_SUBMIT_TIME) or root.time(_DELIVERY_TIME)
    values = {"from": shown, "to": root.string(_DISPLAY_TO), "cc": root.string(_DISPLAY_CC),
              "date": format_datetime(when) if when else "", "subject": root.string(_SUBJECT),
              "message-id": root.string(_MESSAGE_ID)}
    return {key: _one_line(v) for key, v in values.items() if v.strip()}


def _body(root: _Storage, flags: list[str]) -> str:
    """The plain body, else the HTML body as markdown (its charset: the message's internet
    code page, else UTF-8 when it decodes, else the code page)."""
    text = root.string(_BODY)
    if text.strip():
        return text.replace("\r\n", "\n").strip()
    raw = root.binary(_HTML)
    markup = root.string(_HTML) if raw is None else _decode_html(raw, root)
    if markup.strip():
        return _html_text(markup).strip()
    if root.kind(f"{_SUBSTG}10090102"):
        flags.append("body: RTF only, not read")
    return ""


def _decode_html(raw: bytes, root: _Storage) -> str:
    codec = _codepage(root.number(_INTERNET_CPID))
    if codec:
        return raw.decode(codec, "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode(root.codepage, "replace")


def _attachments(root: _Storage, flags: list[str], depth: int = 0) -> list[tuple[str, bytes]]:
    """Each attachment storage, in order, as (name, bytes); past MAX_ATTACHMENTS flagged."""
    at = len(root.path)
    names = sorted({e[at] for e in root.ole.listdir(streams=True, storages=True)
                    if len(e) > at + 1 and e[:at] == root.path and e[at].startswith(_ATTACH)})
    if len(names) > MAX_ATTACHMENTS:
        flags.append(f"cut: {len(names) - MAX_ATTACHMENTS:,} attachments after "
                     f"{MAX_ATTACHMENTS} not read")
    out = []
    for i, storage in enumerate(names[:MAX_ATTACHMENTS], 1):
        got = _attachment(root.child(storage, 8), i, flags, depth)
        if got is not None:
            out.append(got)
    return out


def _attachment(att: _Storage, i: int, flags: list[str],
                depth: int) -> tuple[str, bytes] | None:
    name = (att.string(_LONG_NAME) or att.string(_SHORT_NAME)
            or att.string(_DISPLAY_NAME)).strip()
    name = " ".join(name.replace("/", "∕").replace("\\", "∕").split())[:200]
    if att.kind(f"{_SUBSTG}{_ATTACH_DATA:04X}000D"):
        if att.number(_ATTACH_METHOD) == 5 and depth < MAX_EMBEDDED:
            return _embedded(att.child(f"{_SUBSTG}{_ATTACH_DATA:04X}000D", 24), i, name,
                             flags, depth + 1)
        what = ("an OLE object" if att.number(_ATTACH_METHOD) != 5
                else f"an attached message deeper than {MAX_EMBEDDED} levels")
        flags.append(f"attachment {i}: {what} ({name or 'unnamed'}), not read")
        return None
    data = att.binary(_ATTACH_DATA, cap=MAX_ATTACHMENT_BYTES + 1)
    if data is None:
        flags.append(f"attachment {i}: no data (a link or reference: {name or 'unnamed'}), "
                     "not read")
        return None
    if len(data) > MAX_ATTACHMENT_BYTES:
        flags.append(f"attachment {i}: over {MAX_ATTACHMENT_BYTES:,} bytes ({name}), not read")
        return None
    return name or f"attachment {i}", data


def _embedded(inner: _Storage, i: int, name: str, flags: list[str],
              depth: int) -> tuple[str, bytes]:
    """An attached message (a storage in this file) as an .eml of its headers, body and
    attachments, so documents.py reads it under the mail as it reads a mail in a mail."""
    inner.codepage = _codepage(inner.number(_CODEPAGE)) or inner.codepage
    own: list[str] = []
    meta = _headers(inner)
    mail = MIMEMultipart()
    for key in SHOWN:
        if key.lower() in meta:
            mail[key] = Header(meta[key.lower()], "utf-8")
    mail.attach(MIMEText(_body(inner, own) or "", "plain", "utf-8"))
    for file, data in _attachments(inner, own, depth):
        part = MIMEApplication(data)
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", file))
        mail.attach(part)
    flags.extend(f"attachment {i}: {f}" for f in own)
    label = meta.get("subject") or name or f"message {i}"
    return f"{label[:195]}.eml", mail.as_bytes()
