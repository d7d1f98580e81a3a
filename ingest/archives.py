"""Safe extraction of zip and tar archives into a fresh folder.

Every member is checked before anything is written: unsafe names (absolute, drive-letter or
`..` paths, NUL bytes), links and special files are refused and reported; size and
compression-ratio caps are checked on the declared sizes first and again on the bytes actually
written, and a member that breaks one is refused on its own (the rest is extracted, as 7-Zip
and bsdtar skip a bad member); only too many members refuses the whole archive. Only regular
files (0o644, subject to the umask) and directories are created. On any failure the
destination is left as it was found.

Each path is reported once: the first member of a name is the one extracted or refused, and a
later member of the same name (after normalising `./a`, `a//b`, `a\\b`) is skipped and listed
in `Extracted.duplicates` ("duplicate member name"), so a report never holds two rows for one
path (two refused links of one name, a file and a FIFO).
"""

from __future__ import annotations

import errno
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ingest.types import IngestError

ARCHIVE_SUFFIXES: tuple[str, ...] = (
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".txz",
)

_CHUNK = 1024 * 1024
MAX_DEPTH = 128  # folders per member path; real trees stay far below, recursion would not
_MAX_TAR_HEADER_BYTES = 1024 * 1024  # pax / GNU long-name headers are read into memory
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
# Errors that mean "the archive's bytes are bad", raised while reading (never while writing).
_READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,  # zipfile: unsupported compression or feature
    ValueError,  # includes UnicodeDecodeError on bad member names
    OSError,
)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps that protect against archive bombs; sizes are uncompressed bytes."""

    max_total_bytes: int = 2 * 1024**3
    max_file_bytes: int = 512 * 1024**2
    max_members: int = 200_000
    max_ratio: float = 200.0  # uncompressed / compressed, whole archive and each zip member
    # Ratio checks only apply once this much would be written, so small, highly compressible
    # files (a few KB of zeros in a test fixture) are not mistaken for bombs.
    ratio_min_bytes: int = 1024**2


@dataclass(frozen=True)
class Extracted:
    """Where the tree was extracted, the members refused on the way (name, reason; each name
    once), and the later members of a name already seen (skipped: "duplicate member name")."""

    root: Path
    refused: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class _MemberRefused(Exception):
    """One member broke a limit while it was written: it is removed and reported."""


class ArchiveError(IngestError):
    """An archive could not be extracted safely; nothing is left in the destination."""


def is_archive(path: Path) -> bool:
    """True when the file name has an archive suffix (case-insensitive) and is not a folder."""
    path = Path(path)
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and not path.is_dir()


def extract_archive(
    archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()
) -> Extracted:
    """Extract `archive` into `dest` (absent or empty), refusing anything unsafe.

    Raises ArchiveError for corrupt, encrypted or oversized archives; in that case `dest` is
    removed again (or emptied, if it existed before).
    """
    archive, dest = Path(archive), Path(dest)
    _check_dest(dest)
    if not archive.is_file():
        raise ArchiveError(f"archive not found: {archive}")
    try:
        archive_size = archive.stat().st_size
    except OSError as exc:
        raise ArchiveError(f"cannot read archive {archive.name}: {_reason(exc)}") from exc
    budget = _Budget(limits, archive.name, archive_size)

    if _is_zip(archive):
        with _open_zip(archive) as zf:
            with _reading(archive):
                plan = _scan_zip(zf, budget)
            return _extract(plan, dest, budget, archive, lambda e: zf.open(e.handle))
    with _open_tar(archive) as tf:
        with _reading(archive):
            plan = _scan_tar(tf, budget)
        return _extract(plan, dest, budget, archive, lambda e: _tar_member(tf, e))


# --- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str  # as written in the archive
    parts: tuple[str, ...]  # safe, normalised path components under dest
    is_dir: bool
    size: int  # declared uncompressed size
    handle: zipfile.ZipInfo | tarfile.TarInfo


@dataclass
class _Plan:
    entries: list[_Entry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: path (normalised parts, or the raw name of an unsafe one) -> whether it is a folder
    seen: dict[tuple[str, ...], bool] = field(default_factory=dict)

    def claim(self, name: str, is_dir: bool) -> bool:
        """True for the first member of a path; a later one is left out, and listed unless it
        is a folder entry repeating a folder (harmless: tar appends one per update)."""
        parts, reason = _member_parts(name)
        key = ("\x00unsafe", name) if reason else parts
        if not key and is_dir:
            return True  # `./`: the root itself, never reported
        if key not in self.seen:
            self.seen[key] = is_dir
            return True
        if not (is_dir and self.seen[key]):
            self.duplicates.append(name)
        return False


def _member_parts(name: str) -> tuple[tuple[str, ...], str | None]:
    """Normalised path components of a member name, or a reason to refuse it."""
    if "\x00" in name:
        return (), "name contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        return (), "absolute path"
    if _DRIVE.match(norm):
        return (), "absolute path (drive letter)"
    parts = tuple(p for p in norm.split("/") if p not in ("", "."))
    if ".." in parts:
        return (), "path traversal ('..') outside the destination"
    if len(parts) > MAX_DEPTH:
        return (), f"nested deeper than {MAX_DEPTH} folders"
    return parts, None


def _add(
    plan: _Plan,
    name: str,
    is_dir: bool,
    size: int,
    handle: zipfile.ZipInfo | tarfile.TarInfo,
    kind_reason: str | None,
) -> None:
    parts, reason = _member_parts(name)
    reason = reason or kind_reason
    if reason is None and not parts and not is_dir:
        reason = "empty name"
    if reason is not None:
        plan.refused.append((name, reason))
    elif parts:  # a bare "./" directory entry is the root itself
        plan.entries.append(_Entry(name, parts, is_dir, size, handle))


def _scan_zip(zf: zipfile.ZipFile, budget: _Budget) -> _Plan:
    infos = zf.infolist()
    budget.members(len(infos))
    plan = _Plan()
    for info in infos:
        mode = stat.S_IFMT(info.external_attr >> 16)
        is_dir = info.is_dir() or mode == stat.S_IFDIR
        if not plan.claim(info.filename, is_dir):
            continue
        if info.flag_bits & 0x1:
            raise ArchiveError(
                f"archive {budget.name} is encrypted (member {info.filename!r}); "
                "encrypted archives are not supported"
            )
        if info.compress_type not in _ZIP_METHODS:
            raise ArchiveError(
                f"archive {budget.name} uses an unsupported compression method "
                f"({info.compress_type}) for member {info.filename!r}"
            )
        kind_reason = None if is_dir or mode in (0, stat.S_IFREG) else _special_reason(mode)
        if kind_reason is None and not is_dir:
            kind_reason = budget.declare(info.filename, info.file_size, info.compress_size)
        _add(plan, info.filename, is_dir, info.file_size, info, kind_reason)
    return plan


def _special_reason(mode: int) -> str:
    if mode == stat.S_IFLNK:
        return "symbolic link (not followed)"
    if mode in (stat.S_IFCHR, stat.S_IFBLK):
        return "device file"
    if mode == stat.S_IFIFO:
        return "FIFO (named pipe)"
    if mode == stat.S_IFSOCK:
        return "socket"
    return f"unsupported file type ({mode:#o})"


def _scan_tar(tf: tarfile.TarFile, budget: _Budget) -> _Plan:
    plan = _Plan()
    for count, info in enumerate(tf, start=1):  # reads headers only; data is skipped
        budget.members(count)
        if not plan.claim(info.name, info.isdir()):
            continue
        kind_reason = None
        if info.issym():
            kind_reason = "symbolic link (not followed)"
        elif info.islnk():
            kind_reason = "hard link (not followed)"
        elif info.ischr() or info.isblk():
            kind_reason = "device file"
        elif info.isfifo():
            kind_reason = "FIFO (named pipe)"
        elif not (info.isreg() or info.isdir()):
            kind_reason = f"unsupported member type {info.type!r}"
        if kind_reason is None and info.isreg():
            kind_reason = budget.declare(info.name, info.size, None)
        _add(plan, info.name, info.isdir(), info.size, info, kind_reason)
    return plan


class _GuardedTarInfo(tarfile.TarInfo):
    """TarInfo that refuses oversized pax / GNU long-name headers (tarfile reads them whole)."""

    _EXTENDED = (
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    )

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in self._EXTENDED and self.size > _MAX_TAR_HEADER_BYTES:
            raise tarfile.ReadError(f"extended header of {self.size} bytes is too large")
        return super()._proc_member(tarfile_)


def _tar_member(tf: tarfile.TarFile, entry: _Entry) -> IO[bytes]:
    src = tf.extractfile(entry.handle)  # type: ignore[arg-type]
    if src is None:
        raise tarfile.ReadError(f"member {entry.name!r} has no data")
    return src


# --- limits -----------------------------------------------------------------------------------


class _Budget:
    """Tracks declared and written sizes against ArchiveLimits."""

    def __init__(self, limits: ArchiveLimits, name: str, archive_size: int) -> None:
        self.limits = limits
        self.name = name
        self.archive_size = max(archive_size, 1)
        self.declared = 0
        self.written = 0

    def members(self, count: int) -> None:
        if count > self.limits.max_members:
            raise ArchiveError(
                f"archive {self.name} has more than {self.limits.max_members:,} members; "
                "refusing to extract it"
            )

    def declare(self, member: str, size: int, compressed: int | None) -> str | None:
        """Why this member must be refused (it alone breaks a limit), else None; a refused
        member is left out and the rest of the archive is still extracted."""
        lim = self.limits
        if size > lim.max_file_bytes:
            return f"{_human(size)}, over the per-file limit of {_human(lim.max_file_bytes)}"
        if compressed and size > lim.ratio_min_bytes and size / compressed > lim.max_ratio:
            return (f"expands {size / compressed:.0f}x (limit {lim.max_ratio:.0f}x); "
                    "a likely zip bomb")
        total = self.declared + size
        if total > lim.max_total_bytes:
            return (f"the archive would expand to more than {_human(lim.max_total_bytes)}; "
                    "members after this one that fit are still extracted")
        if total > lim.ratio_min_bytes and total / self.archive_size > lim.max_ratio:
            return (f"the archive would expand {total / self.archive_size:.0f}x its size "
                    f"(limit {lim.max_ratio:.0f}x); a likely zip bomb")
        self.declared = total
        return None

    def wrote(self, member: str, file_bytes: int, chunk: int) -> None:
        """Account for `chunk` more bytes about to be written (`file_bytes` for this member);
        headers can lie, so real bytes are checked again."""
        if file_bytes > self.limits.max_file_bytes:
            raise _MemberRefused(
                f"larger than the per-file limit of {_human(self.limits.max_file_bytes)}")
        self.written += chunk
        self._check_total(self.written, "expanded to")

    def _check_total(self, total: int, verb: str) -> None:
        lim = self.limits
        if total > lim.max_total_bytes:
            raise ArchiveError(
                f"archive {self.name} {verb} more than {_human(lim.max_total_bytes)} "
                "uncompressed; refusing to extract it"
            )
        ratio = total / self.archive_size
        if total > lim.ratio_min_bytes and ratio > lim.max_ratio:
            raise ArchiveError(
                f"archive {self.name} {verb} {ratio:.0f}x its compressed size "
                f"(limit {lim.max_ratio:.0f}x); refusing a likely zip bomb"
            )


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# --- writing ----------------------------------------------------------------------------------


def _extract(
    plan: _Plan,
    dest: Path,
    budget: _Budget,
    archive: Path,
    open_member: Callable[[_Entry], IO[bytes]],
) -> Extracted:
    created = _make_dest(dest)
    refused = list(plan.refused)
    try:
        for entry in plan.entries:
            reason = _write_entry(entry, dest, budget, archive, open_member)
            if reason is not None:
                refused.append((entry.name, reason))
    except BaseException:
        _clean(dest, created)
        raise
    return Extracted(root=dest, refused=refused, duplicates=list(plan.duplicates))


def _write_entry(
    entry: _Entry,
    dest: Path,
    budget: _Budget,
    archive: Path,
    open_member: Callable[[_Entry], IO[bytes]],
) -> str | None:
    """Write one planned member; return a reason when it had to be refused."""
    target = dest.joinpath(*entry.parts)
    try:
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _BINARY
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP):
            return "conflicts with another member of the same name"
        if exc.errno == errno.ENAMETOOLONG:
            return "name too long for this file system"
        raise ArchiveError(
            f"could not extract {entry.name!r} from {archive.name}: {_reason(exc)}"
        ) from exc
    try:
        with os.fdopen(fd, "wb") as out:
            with _reading(archive):
                src = open_member(entry)
            with src:
                _copy(src, out, entry, budget, archive)
    except _MemberRefused as refused:
        target.unlink(missing_ok=True)
        return str(refused)
    return None


def _copy(src: IO[bytes], out: IO[bytes], entry: _Entry, budget: _Budget, archive: Path) -> None:
    """Stream one member, counting real bytes against the limits before writing them."""
    file_bytes = 0
    while True:
        with _reading(archive):
            chunk = src.read(_CHUNK)
        if not chunk:
            break
        file_bytes += len(chunk)
        budget.wrote(entry.name, file_bytes, len(chunk))
        try:
            out.write(chunk)
        except OSError as exc:
            raise ArchiveError(
                f"could not extract {entry.name!r} from {archive.name}: {_reason(exc)}"
            ) from exc
    if isinstance(entry.handle, tarfile.TarInfo) and file_bytes != entry.size:
        raise ArchiveError(f"corrupt archive {archive.name}: member {entry.name!r} is truncated")


def _check_dest(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ArchiveError(f"cannot extract into {dest}: it is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise ArchiveError(f"cannot extract into {dest}: the folder is not empty")


def _make_dest(dest: Path) -> bool:
    """Create `dest` if needed; return True when it was created here."""
    _check_dest(dest)
    if dest.is_dir():
        return False
    try:
        dest.mkdir(parents=True)
    except OSError as exc:
        raise ArchiveError(f"cannot create folder {dest}: {_reason(exc)}") from exc
    return True


def _clean(dest: Path, created: bool) -> None:
    """Remove what was extracted: `dest` itself if created here, else its contents."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# --- helpers ----------------------------------------------------------------------------------


def _is_zip(archive: Path) -> bool:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return True
    if name.endswith(ARCHIVE_SUFFIXES):
        return False
    return zipfile.is_zipfile(archive)


def _open_zip(archive: Path) -> zipfile.ZipFile:
    with _reading(archive):
        return zipfile.ZipFile(archive)


def _open_tar(archive: Path) -> tarfile.TarFile:
    with _reading(archive):
        try:
            return tarfile.open(archive, mode="r:*", tarinfo=_GuardedTarInfo)
        except tarfile.ReadError as exc:
            # "r:*" folds each method's failure into one multi-line message; keep it short.
            text = str(exc)
            if "could not be opened successfully" not in text:
                raise
            guard = re.search(r"extended header of \d+ bytes is too large", text)
            reason = guard.group(0) if guard else "not a tar archive (tried plain, gzip, bzip2, xz)"
            raise tarfile.ReadError(reason) from exc


@contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """Turn errors raised while reading the archive into ArchiveError('corrupt archive ...')."""
    try:
        yield
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise ArchiveError(f"corrupt archive {archive.name}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text or type(exc).__name__
