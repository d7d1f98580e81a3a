"""What reading each file gave, remembered by the file's stat: a re-pack reads only what changed.

A pack remembers, for every file it read, the file's stamp (size, mtime, ctime, inode, device
as it was listed) and what reading it gave: its document, counted, or the noise filter's skip.
The next pack of the same inputs, with the same options, tokenizer and code, takes those back
for files whose stamp is unchanged without opening them, as git's index does for `git status`.

Git's racy-timestamp rule: a file written within the timestamp granularity of the moment it was
listed can keep its stamp while its bytes change, so a file whose mtime or ctime lies within
RACY_NS of the listing is not remembered (it is read again next time). A ctime cannot be set
back by a program, so a rewrite that restores the old mtime is still seen.

Only pure results are remembered: documents with a content key (the same bytes and options
always give them; a PDF's pages and OCR'd pictures are read again, their OCR cached by
ingest/readmemo) and skips by the noise filter, never errors; nothing when pictures are kept as
image files. A memo is a SQLite file in the user's cache folder, a row a file, its outputs
marshal of plain values (strings, numbers, tuples: no objects, no code run on load) checked
field by field when taken back: a row that does not load is read again. A pack writes its rows
in batches as it goes, so a large pack holds one batch of them, not all: a row is true of its
file's stamp whether or not the pack that read it gets written (one that fails keeps what it
read); files gone are dropped once a pack is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sqlite3
import sysconfig
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from ingest.types import Candidate, Document, Segment, Skipped, Symbol

#: bump when what is stored changes shape
VERSION = 1
#: a file changed this close to its listing is not remembered (coarse file-system clocks: FAT
#: keeps 2 s; a network file system's clock may lag the machine's)
RACY_NS = 2_000_000_000
#: a pack with more text than this keeps no memo (its file would hold a second copy of ~2 GB
#: of text; the standard library is 36M characters, the venv's site-packages ~300M)
MAX_CHARS = 512_000_000
#: the rows kept now are written every this many characters: a large pack holds one batch
FLUSH_CHARS = 16_000_000
#: rows whose outputs are fetched at once when their files are recalled
FETCH_ROWS = 256
#: a process that packs again (`successor`) holds the memo's rows in memory up to this many
#: characters; past it, its next pack loads the file
MAX_HELD_CHARS = 64_000_000
#: memo files kept in one folder, the most recently used
KEEP_FILES = 8
#: flags of a reading that looked at other files than its own: an HTML file is source code in a
#: project's folder (a Makefile, package.json or .git above it) and a web page elsewhere
#: (ingest/documents.html_is_source), so its stamp alone does not say the reading still holds
AROUND_FLAGS = ("html:",)

Output = Document | Skipped


def stamp(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What a memo entry is compared on (git's index compares the same fields)."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def memo_key(*parts: object) -> str:
    """A file name for one pack's memo: its inputs, options, tokenizer and code as given."""
    return hashlib.sha256(repr((VERSION, *parts)).encode()).hexdigest()[:24]


def code_stamp(package: Path) -> tuple:
    """The reading code's own files (name, size, mtime) and the folders installed libraries
    live in (an install or upgrade adds and removes entries there, which moves the folder's
    mtime): an edited or upgraded reader, detect-secrets or python-docx included, must not hand
    back what the old one read."""
    try:
        own = tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                           for e in os.scandir(package) if e.name.endswith(".py")))
        libraries = tuple(os.stat(p).st_mtime_ns for p in sorted(
            {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}) if os.path.isdir(p))
        return own, libraries
    except OSError:
        return ("unreadable",)


class StatMemo:
    """One pack's memo: `recall` what a file gave last time, `keep` what it gave now, `save`.
    One SQLite file a memo, a row a file: a re-pack after one change writes one row."""

    def __init__(self, path: Path, rows: dict[str, tuple] | None = None) -> None:
        """The memo at `path`, loaded from it; or, given `rows` (a `successor`'s), from them
        without opening the file."""
        self.path = path
        self.listed_ns = time.time_ns()  # set again by `listing`, as the files are listed
        self._old: dict[str, tuple] = {}
        self._seen: set[str] = set()  # locations recalled or kept now
        self._new: list[tuple] = []  # rows kept now, not yet written out
        self._new_chars = 0
        self._plain: dict[str, tuple] = {}  # location -> the row kept now, its outputs decoded
        self._chars = 0
        self._conn: sqlite3.Connection | None = None  # open once rows were written out
        self._failed = False  # writing rows failed: no more are written
        self.recalled = 0  # files taken back now, not read
        if rows is not None:
            self._old = dict(rows)
            return
        try:  # the stamps only: a row's outputs are fetched when its file is recalled
            self._conn = self._connect()
            rows = self._conn.execute("SELECT location, path, size, mtime, ctime, inode, "
                                      "device, chars, NULL FROM files").fetchall()
            self._old = {r[0]: r for r in rows}
        except sqlite3.OperationalError:  # locked by another pack, or no room: read every file
            self._old = {}
        except sqlite3.DatabaseError:  # not a database (damaged): made anew by `save`
            self._old = {}
            with contextlib.suppress(OSError):
                path.unlink()
        except OSError:  # no cache folder to be had: read every file
            self._old = {}

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        # rows hold whole texts: large pages read them in a tenth of the pages (a new file).
        # A cache: no fsync (a cold pack's 37 MB memo in 0.05 s, not 0.14); the journal still
        # makes a killed pack's write all or nothing
        conn.execute("PRAGMA page_size = 65536")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("CREATE TABLE IF NOT EXISTS files (location TEXT PRIMARY KEY, path TEXT, "
                     "size INTEGER, mtime INTEGER, ctime INTEGER, inode INTEGER, "
                     "device INTEGER, chars INTEGER, outputs BLOB)")
        return conn

    def again(self) -> StatMemo:
        """A memo for the next pack over this one's rows, which it leaves as they are."""
        return StatMemo(self.path, self._old)

    def listing(self) -> None:
        """Called as the files are about to be listed: the moment stamps are judged against."""
        self.listed_ns = time.time_ns()

    def recall(self, wanted: Iterable[tuple[int, str, str, tuple[int, ...] | None]]
               ) -> dict[int, list[Output]]:
        """What each file gave last time, for those of `wanted` (index, path shown, location,
        stamp) whose stamp is the one remembered, by index. Outputs held on disk are fetched
        in batches and dropped once decoded: a re-pack holds its documents, not also the
        memo's copy of them (site-packages: 366 MB)."""
        found: dict[int, list[Output]] = {}
        on_disk: list[tuple[int, tuple]] = []
        for i, path, location, stamp in wanted:
            row = self._old.get(location)
            if stamp is None or row is None or row[1] != path or row[2:7] != stamp:
                continue
            if row[8] is None:
                on_disk.append((i, row))
            else:
                self._take(i, row, row[8], found)
        for at in range(0, len(on_disk), FETCH_ROWS):
            batch = on_disk[at:at + FETCH_ROWS]
            try:
                rows = self._conn.execute(  # type: ignore[union-attr]
                    "SELECT location, size, mtime, ctime, inode, device, outputs FROM files "
                    f"WHERE location IN ({','.join('?' * len(batch))})",
                    [row[0] for _, row in batch]).fetchall()
            except (sqlite3.Error, AttributeError):
                break  # the rest is read again
            got = {r[0]: r[1:] for r in rows}
            for i, row in batch:
                stored = got.get(row[0])
                if stored is not None and stored[:5] == row[2:7]:  # not rewritten meanwhile
                    try:
                        self._take(i, row, _checked(marshal.loads(stored[5])), found)
                    except (EOFError, ValueError, TypeError):
                        continue
        return found

    def _take(self, i: int, row: tuple, stored: list, found: dict[int, list[Output]]) -> None:
        found[i] = [_document(v) if k == "d" else Skipped(*v) for k, v in stored]
        if row[8] is not stored:  # decoded once: a successor takes it up as it is
            self._old[row[0]] = (*row[:8], stored)
        self._seen.add(row[0])
        self._chars += row[7] if type(row[7]) is int else 0
        self.recalled += 1

    def keep(self, cand: Candidate, outputs: Iterable[Output]) -> None:
        """Remember what reading `cand` gave now, when it can be taken back next time."""
        outputs = list(outputs)
        st = cand.stamp
        if (st is None or not outputs or st[1] >= self.listed_ns - RACY_NS
                or st[2] >= self.listed_ns - RACY_NS):
            return
        stored: list[tuple] = []
        chars = 0
        for out in outputs:
            if isinstance(out, Skipped):
                if out.status != "skipped":
                    return
                stored.append(("s", (out.path, out.root, out.size, out.status, out.reason,
                                     out.sha256)))
            else:
                if (out.content_key is None or out.children
                        or any(f.startswith(AROUND_FLAGS) for f in out.flags)):
                    return
                stored.append(("d", _plain(out)))
                chars += sum(len(s.text) for s in out.segments)
        location = str(cand.location)
        self._seen.add(location)
        self._chars += chars
        if self._chars > MAX_CHARS:  # past it nothing is saved: hold nothing more
            self._new.clear()
            self._plain.clear()
            return
        head = (location, cand.path, *st, chars)
        self._new.append((*head, marshal.dumps(stored)))
        self._new_chars += chars
        if self._chars <= MAX_HELD_CHARS:
            self._plain[location] = (*head, stored)
        elif self._plain:
            self._plain.clear()
        if self._new_chars >= FLUSH_CHARS:
            self._write_out()

    def _write_out(self) -> None:
        """The rows kept so far, written (one transaction a batch)."""
        try:
            if self._failed:
                return
            if self._conn is None:
                self._conn = self._connect()
            with self._conn:
                self._conn.executemany("INSERT OR REPLACE INTO files VALUES "
                                       "(?, ?, ?, ?, ?, ?, ?, ?, ?)", self._new)
        except (OSError, sqlite3.Error):
            self._failed = True
        finally:
            self._new.clear()
            self._new_chars = 0

    def successor(self) -> StatMemo | None:
        """This memo as `save` leaves it, held in memory with its rows decoded, for a process
        that packs again (`pack --watch`): its next pack takes up `successor().again()`
        without loading the file or decoding a row (a pack that fails leaves it as it was).
        None past MAX_HELD_CHARS: the next pack loads the file."""
        if self._chars > MAX_HELD_CHARS or self._failed:
            return None
        rows = {loc: self._old[loc] for loc in self._seen if loc in self._old}
        rows.update(self._plain)
        return StatMemo(self.path, rows)

    def save(self) -> None:
        """Write the rows kept now and drop those of files gone (once the pack is written);
        never fails a pack."""
        gone = [(loc,) for loc in self._old.keys() - self._seen]
        conn, self._conn = self._conn, None
        try:
            if self._chars > MAX_CHARS:
                self.path.unlink(missing_ok=True)
                return
            if self._failed:  # what was written stays: its rows still say what they said
                return
            if not gone and not self._new and conn is None:
                os.utime(self.path)  # used now: kept by _prune
                return
            with closing(conn or self._connect()) as db, db:
                db.executemany("DELETE FROM files WHERE location = ?", gone)
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               self._new)
            _prune(self.path.parent)
        except (OSError, ValueError, sqlite3.Error):
            pass
        finally:
            if conn is not None:
                conn.close()


def _plain(doc: Document) -> tuple:
    return (doc.path, doc.root, doc.kind, doc.language, doc.sha256, doc.size,
            [(s.order, s.text, s.span_kind, s.start, s.end, s.tokens, s.extra_tokens, s.locator)
             for s in doc.segments],
            [(y.name, y.kind, y.start_line, y.end_line, y.signature, y.parent)
             for y in doc.symbols],
            dict(doc.metadata), list(doc.flags), doc.tokens, doc.content_key)


def _document(v: tuple) -> Document:
    (path, root, kind, language, sha, size, segs, syms, metadata, flags, tokens, key) = v
    return Document(path, root, kind, language, sha, size, [Segment(*s) for s in segs],
                    [Symbol(*y) for y in syms], dict(metadata), list(flags), tokens, key,
                    counted=True)  # copies: a row held in memory is taken back again


_PLAIN = (str, int, type(None))


def _checked(stored: object) -> list[tuple[str, tuple]]:
    """A row's outputs as stored, or TypeError: only tuples of plain values of the right
    lengths are taken back (a document's segments and symbols included)."""
    if not isinstance(stored, list):
        raise TypeError("not a list")
    for out in stored:
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple)):
            raise TypeError("not an output")
        kind, v = out
        if kind == "s" and len(v) == 6 and all(isinstance(x, _PLAIN) for x in v):
            continue
        if not (kind == "d" and len(v) == 12 and type(v[6]) is list and type(v[7]) is list
                and type(v[8]) is dict and type(v[9]) is list):
            raise TypeError("not a document")
        fields = [*v[:6], *v[10:], *v[9], *v[8].keys(), *v[8].values()]
        for part, size in ((v[6], 8), (v[7], 6)):
            for row in part:
                if type(row) is not tuple or len(row) != size:
                    raise TypeError("not a segment or symbol")
                fields.extend(row)
        if not all(isinstance(x, _PLAIN) for x in fields):
            raise TypeError("not plain values")
    return stored  # type: ignore[return-value]


def _prune(folder: Path) -> None:
    """Keep the KEEP_FILES most recently written memos."""
    files = sorted(folder.glob("*.memo"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in files[KEEP_FILES:]:
        old.unlink(missing_ok=True)
