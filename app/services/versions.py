"""A corpus's version: one hash of its readable sources' (path, sha256) pairs and its
tokenizer, so the same files counted the same way are the same version wherever ingested."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def version_of_sources(pairs: list[tuple[str, str]], tokenizer_fp: str) -> str:
    return version_of_sorted(sorted(pairs), tokenizer_fp)


def version_of_sorted(pairs: Iterable[tuple[str, str]], tokenizer_fp: str) -> str:
    """The version of (path, sha256) pairs given in path order (a stream: a million sources'
    pairs are never held at once)."""
    h = hashlib.sha256(tokenizer_fp.encode())
    for path, sha in pairs:
        h.update(f"\0{path}\0{sha}".encode())
    return h.hexdigest()
