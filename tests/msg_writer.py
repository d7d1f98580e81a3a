"""A small OLE2 compound-file writer, so tests can build real Outlook .msg bytes (no library
here writes them). Version 3: 512-byte sectors, one FAT (DIFAT entries in the header only),
every stream at least 4,096 bytes (the mini-stream cutoff) so no mini stream is needed.

`compound(tree)`: tree maps a name to bytes (a stream) or to a dict (a storage).
`msg(...)`: an Outlook message built on it (MS-OXMSG property streams and names).
"""

from __future__ import annotations

import struct

SECTOR = 512
MINI_CUTOFF = 4096
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class _Entry:
    def __init__(self, name: str, kind: int, data: bytes = b"") -> None:
        self.name, self.kind, self.data = name, kind, data
        self.left = self.right = self.child = NOSTREAM
        self.start, self.size = END, 0


def _flatten(tree: dict, entries: list[_Entry]) -> list[int]:
    """Entries for a storage's children (recursively); their ids, in sibling order."""
    ids = []
    for name, value in sorted(tree.items(), key=lambda kv: (len(kv[0]), kv[0].upper())):
        entry = _Entry(name, 1 if isinstance(value, dict) else 2,
                       b"" if isinstance(value, dict) else value)
        if entry.kind == 2 and len(value) < MINI_CUTOFF:
            entry.data = value + b"\0" * (MINI_CUTOFF - len(value))
        entries.append(entry)
        ids.append(len(entries) - 1)
        if isinstance(value, dict):
            entry.child = _balanced(_flatten(value, entries), entries)
    return ids


def _balanced(ids: list[int], entries: list[_Entry]) -> int:
    """Siblings as a balanced binary tree (all black is a valid red-black tree here)."""
    if not ids:
        return NOSTREAM
    mid = len(ids) // 2
    node = entries[ids[mid]]
    node.left = _balanced(ids[:mid], entries)
    node.right = _balanced(ids[mid + 1:], entries)
    return ids[mid]


def _dir_entry(e: _Entry) -> bytes:
    name = e.name.encode("utf-16-le")[:62]
    return (name.ljust(64, b"\0") + struct.pack("<HBB", len(name) + 2, e.kind, 1)
            + struct.pack("<III", e.left, e.right, e.child) + b"\0" * 16 + b"\0" * 4
            + b"\0" * 16 + struct.pack("<IQ", e.start, e.size))


def _empty_entry() -> bytes:
    return b"\0" * 68 + struct.pack("<III", NOSTREAM, NOSTREAM, NOSTREAM) + b"\0" * 48


def _sectors(n: int) -> int:
    return -(-n // SECTOR)


def compound(tree: dict) -> bytes:
    """The bytes of a compound file holding `tree`."""
    root = _Entry("Root Entry", 5)
    entries = [root]
    root.child = _balanced(_flatten(tree, entries), entries)
    streams = [e for e in entries if e.kind == 2]
    dir_sectors = _sectors(len(entries) * 128)
    data_sectors = sum(_sectors(len(e.data)) for e in streams)
    fat_sectors = 1
    while fat_sectors * (SECTOR // 4) < fat_sectors + dir_sectors + data_sectors:
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("too large for a header-only DIFAT")
    fat = [FATSECT] * fat_sectors
    first_dir = len(fat)
    fat += [*range(first_dir + 1, first_dir + dir_sectors), END]
    body = bytearray()
    for e in streams:
        n = _sectors(len(e.data))
        e.start, e.size = len(fat), len(e.data)
        fat += [*range(e.start + 1, e.start + n), END]
        body += e.data.ljust(n * SECTOR, b"\0")
    fat += [FREE] * (fat_sectors * (SECTOR // 4) - len(fat))
    directory = b"".join(_dir_entry(e) for e in entries)
    assert all(len(_dir_entry(e)) == 128 for e in entries) and len(_empty_entry()) == 128
    directory += _empty_entry() * (dir_sectors * 4 - len(entries))
    difat = [*range(fat_sectors)] + [FREE] * (109 - fat_sectors)
    header = (MAGIC + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
              + struct.pack("<IIIIIIIII", 0, fat_sectors, first_dir, 0, MINI_CUTOFF, END, 0,
                            END, 0)
              + struct.pack("<109I", *difat))
    assert len(header) == SECTOR
    return header + struct.pack(f"<{len(fat)}I", *fat) + directory + bytes(body)


# -- Outlook messages ------------------------------------------------------------------------

def _unicode(pid: int, text: str) -> tuple[str, bytes]:
    return f"__substg1.0_{pid:04X}001F", text.encode("utf-16-le")


def _props(header: int, fixed: dict[int, tuple[int, bytes]]) -> bytes:
    """A property stream: its header, then (tag, flags, 8-byte value) per fixed property."""
    out = b"\0" * header
    for pid, (ptype, value) in fixed.items():
        out += struct.pack("<II", (pid << 16) | ptype, 6) + value.ljust(8, b"\0")
    return out


def filetime(year: int, month: int, day: int, hour: int = 0) -> bytes:
    from datetime import UTC, datetime

    delta = datetime(year, month, day, hour, tzinfo=UTC) - datetime(1601, 1, 1, tzinfo=UTC)
    return struct.pack("<Q", (delta.days * 86_400 + delta.seconds) * 10_000_000)


def msg(**fields) -> bytes:
    """An Outlook message's bytes (fields as message_tree's)."""
    return compound(message_tree(**fields))


def message_tree(subject: str = "", sender: str = "", address: str = "", to: str = "",
                 cc: str = "", body: str | None = None, html: bytes | None = None,
                 sent: bytes | None = None, attachments: list[tuple[str, bytes]] = (),
                 embedded: list[tuple[str, dict]] = (), ansi: dict[int, bytes] | None = None,
                 codepage: int | None = None, header: int = 32) -> dict:
    """An Outlook message as a storage tree: unicode strings, the plain or HTML body, the
    submit time (a FILETIME), attachments by data (0x3701 0102) and attached messages
    (0x3701 000D: another message_tree(header=24))."""
    tree: dict = {}
    for pid, text in ((0x0037, subject), (0x0C1A, sender), (0x5D01, address),
                      (0x0E04, to), (0x0E03, cc)):
        if text:
            tree.update([_unicode(pid, text)])
    if body is not None:
        tree.update([_unicode(0x1000, body)])
    if html is not None:
        tree["__substg1.0_10130102"] = html
    for pid, raw in (ansi or {}).items():
        tree[f"__substg1.0_{pid:04X}001E"] = raw
    fixed = {0x0039: (0x0040, sent)} if sent else {}
    if codepage:
        fixed[0x3FFD] = (0x0003, struct.pack("<I", codepage))
    tree["__properties_version1.0"] = _props(header, fixed)
    if header == 32:
        tree["__nameid_version1.0"] = {"__substg1.0_00020102": b""}
    for i, (name, data) in enumerate(attachments):
        tree[f"__attach_version1.0_#{i:08X}"] = {
            **dict([_unicode(0x3707, name)]), "__substg1.0_37010102": data,
            "__properties_version1.0": _props(8, {0x3705: (0x0003, struct.pack("<I", 1))})}
    for k, (name, inner) in enumerate(embedded, len(attachments)):
        tree[f"__attach_version1.0_#{k:08X}"] = {
            **dict([_unicode(0x3707, name)]), "__substg1.0_3701000D": inner,
            "__properties_version1.0": _props(8, {0x3705: (0x0003, struct.pack("<I", 5))})}
    return tree
