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


def check_local_path(text: str) -> Path:
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise IngestError("give the path of a folder or file on this machine")
    if not path.exists():
        raise IngestError(f"path not found: {path}")
    return path
