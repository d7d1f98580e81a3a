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
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal


def temp_path(path: str | os.PathLike[str]) -> Path:
    """Where a write of `path` by this thread goes first: `.NAME.PID.THREAD.tmp` beside it, one
    per process and thread, so concurrent writers of one file never share a temporary file."""
    path = Path(path)
    return path.with_name(f".{path.name[:128]}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "w", *,
                encoding: str = "utf-8", buffering: int = -1,
                fsync: bool = False) -> Iterator[IO[Any]]:
    """A file handle for writing `path` in pieces; the file takes its place when the block ends
    without an exception, and is discarded when it raises."""
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
        os.replace(tmp, path)
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
