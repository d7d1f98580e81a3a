"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The content goes to a hidden temporary sibling (`temp_path`), which then replaces the target in
one `os.replace` (same folder, so never across file systems). On any failure, Ctrl-C included,
the temporary file is removed and the target is left as it was. The target's folder is created
when missing. `fsync=True` also flushes the data (and the rename) to the disk before returning,
for files that must survive a power cut, not only a crash of the process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal


def temp_path(path: str | os.PathLike[str]) -> Path:
    """Where a write of `path` by this thread goes first: `.NAME.PID.THREAD.tmp` beside it, one
    per process and thread, so concurrent writers of one file never share a temporary file."""
    path = Path(path)
    return path.with_name(f".{path.name[:128]}.{os.getpid()}.{threading.get_ident()}.tmp")


def _second_name(path: Path) -> Path | None:
    """A hard link to the file at `path` beside it, or None (no file there, or no links)."""
    held = temp_path(path).with_suffix(".old")
    try:
        os.link(path, held, follow_symlinks=False)
    except OSError:
        return None
    return held


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "w", *,
                encoding: str = "utf-8", buffering: int = -1, fsync: bool = False,
                release: Callable[[Path], None] | None = None) -> Iterator[IO[Any]]:
    """A file handle for writing `path` in pieces; the file takes its place when the block ends
    without an exception, and is discarded when it raises. With `release`, the file it
    replaces keeps a second name until `release` is handed it to remove: the replace then
    does not wait while the file system frees a large file (25 ms for 36 MB), for a caller
    that can remove it later, on another thread."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes with 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, buffering=buffering,
                  encoding=None if mode == "wb" else encoding) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        held = _second_name(path) if release is not None else None
        try:
            os.replace(tmp, path)
        finally:
            if held is not None:
                release(held)  # type: ignore[misc]
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _sync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      fsync: bool = False) -> None:
    """Replace `path` with `text` atomically."""
    with atomic_open(path, "w", encoding=encoding, fsync=fsync) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, *,
                       fsync: bool = False) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
