"""Uploaded files to disk: each batch in its own folder under the data folder's uploads/, with
names reduced to safe basenames, so the corpus can be ingested (and PDF pages drawn) from there.
Size limits are checked before anything is written."""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.settings import get_settings
from ingest.types import IngestError

UNSAFE = re.compile(r"[^\w.\- ]+")


class Uploaded(Protocol):
    name: str
    size: int

    def getvalue(self) -> bytes: ...


@dataclass(frozen=True)
class Refused:
    name: str
    reason: str


def safe_name(name: str) -> str:
    """A basename that cannot leave its folder: no separators, no leading dots."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = UNSAFE.sub("_", base).strip(" .") or "upload"
    return base[:200]


def corpus_folder(corpus: str) -> Path:
    """One folder per exact corpus name: `team@x` and `team_x` read alike but never share."""
    digest = hashlib.sha256(corpus.encode()).hexdigest()[:12]
    return get_settings().home_dir / "uploads" / f"{safe_name(corpus)[:60]}-{digest}"


def save_batch(corpus: str, files: list[Uploaded], limit_mb: int) -> tuple[list[Path],
                                                                            list[Refused]]:
    """Write the files that are within the limit to a new batch folder; list the rest."""
    limit = limit_mb * 1024 * 1024
    keep, refused = [], []
    for f in files:
        if f.size > limit:
            refused.append(Refused(f.name, f"{f.size / 2**20:,.1f} MB is over the upload limit "
                                           f"of {limit_mb:,} MB (Settings)"))
        elif f.size == 0:
            refused.append(Refused(f.name, "empty file"))
        else:
            keep.append(f)
    if not keep:
        return [], refused
    folder = corpus_folder(corpus) / uuid.uuid4().hex[:10]
    folder.mkdir(parents=True, exist_ok=False)
    paths, used = [], set()
    for f in keep:
        name = safe_name(f.name)
        stem, dot, ext = name.partition(".")
        n = 1
        while name in used:
            n += 1
            name = f"{stem}-{n}{dot}{ext}"
        used.add(name)
        path = folder / name
        path.write_bytes(f.getvalue())
        paths.append(path)
    return paths, refused


def discard(paths: list[Path]) -> None:
    """Remove a batch again (its ingest failed, so nothing refers to it)."""
    for folder in {p.parent for p in paths}:
        shutil.rmtree(folder, ignore_errors=True)


def remove_corpus_files(corpus: str) -> None:
    folder = corpus_folder(corpus)
    if folder.is_dir():
        shutil.rmtree(folder)


def apply_server_limit(limit_mb: int) -> None:
    """Make Streamlit's own cap the new limit at once: its upload handler reads
    server.maxUploadSize on every request and refuses a larger body while it arrives (at start,
    `scoutlens ui` passes the saved limit through ui.launch)."""
    from streamlit import config

    config.set_option("server.maxUploadSize", int(limit_mb))


HELD_MB = 2048  # what Streamlit holds of uploads in memory, every session together (at least)
SESSION_FILES = 20  # a session holds at most this many files' worth of the per-file limit


def held_limits(limit_mb: int) -> tuple[int, int]:
    """(one session's, everyone's) bytes of uploads held in memory: a file stays there from
    its upload until its session removes it or ends, so without these one visitor uploading
    file after file within the per-file limit fills the server's memory."""
    everyone = max(HELD_MB, 2 * limit_mb) * 2**20
    return min(SESSION_FILES * limit_mb * 2**20, everyone // 2), everyone


def bound_held_uploads() -> None:
    """Make Streamlit's in-memory upload store refuse (413) a file past its session's share
    or everyone's budget, as the upload arrives (`scoutlens ui` starts it this way)."""
    from starlette.exceptions import HTTPException
    from streamlit import config
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    def add_file(self, session_id: str, file) -> None:
        session_cap, total_cap = held_limits(int(config.get_option("server.maxUploadSize")))
        with self._lock:
            mine = self.file_storage.setdefault(session_id, {})
            old = len(mine[file.file_id].data) if file.file_id in mine else 0
            held = sum(len(r.data) for r in mine.values()) - old
            if (held + len(file.data) > session_cap
                    or self._total_bytes - old + len(file.data) > total_cap):
                raise HTTPException(413, f"this server holds at most {session_cap // 2**20:,} "
                                         "MB of uploads per page (and a total for everyone): "
                                         "ingest or remove the files uploaded so far")
            self._file_count += 0 if old else 1
            mine[file.file_id] = file
            self._total_bytes += len(file.data) - old

    MemoryUploadedFileManager.add_file = add_file


def check_local_path(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise IngestError("give the path of a folder or file on this machine")
    if not path.exists():
        raise IngestError(f"path not found: {path}")
    return path
