"""The pictures ingest keeps for a vision backend (frame and picture JPEGs under the frames
folder): which stored sources lack theirs, and deleting those no stored source needs."""

from __future__ import annotations

import re
import shutil

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.database import session_scope
from app.models import Source, StoredSegment
from app.settings import database_url, get_settings

_PICTURE_NAME = re.compile(r'<(?:frame|picture)\b[^>]*\bimage="([^"/]+)/([^"]+)"')


def pictures_missing(session: Session, corpus_id: int) -> set[str]:
    """Paths of a corpus's sources whose kept pictures (frame and picture JPEGs a vision
    target receives) are no longer in the frames folder: re-ingesting must draw them again."""
    root = get_settings().frames_dir
    rows = session.execute(
        select(Source.path, StoredSegment.text).join(StoredSegment)
        .where(Source.corpus_id == corpus_id, StoredSegment.text.contains(' image="')))
    return {path for path, text in rows
            if any(not (root / folder / name).is_file()
                   for folder, name in _PICTURE_NAME.findall(text))}


def prune_pictures(url: str | None = None) -> int:
    """Delete the kept pictures no stored source needs any more (a removed corpus's, a changed
    file's old ones): a screenshot of a secret kept on purpose must not outlive its corpus.
    Pictures live under the first 16 hex digits of their source's sha256, shared by every
    corpus holding that file. Returns the folders removed."""
    root = get_settings().frames_dir
    if not root.is_dir():
        return 0
    folders = [f for f in root.iterdir() if f.is_dir() and re.fullmatch(r"[0-9a-f]{16}", f.name)]
    if not folders:
        return 0
    with session_scope(database_url(url)) as session:
        used = {sha[:16] for sha in session.scalars(
            select(Source.sha256).where(Source.sha256.is_not(None)).distinct())}
    gone = [f for f in folders if f.name not in used]
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    return len(gone)
