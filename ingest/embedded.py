"""Pictures inside structured documents (a slide's chart, a photo in a Word report): each becomes
a `<picture>` segment right after the part it sits in, read like a picture file."""

from __future__ import annotations

from ingest.pictures import PictureOptions
from ingest.types import StructuredRead


def insert_pictures(read: StructuredRead, options: PictureOptions, sha: str) -> StructuredRead:
    """`read` with its embedded images (read.images) as picture segments among its parts."""
    return read  # contract only: filled in by the issue-25 work
