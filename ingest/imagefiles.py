"""Picture files as documents: PNG, JPEG, WebP, GIF (its first frame), BMP, TIFF (page by page).

Each picture (or TIFF page) is one segment: its OCR text in a `<picture>` tag (ingest/pictures.py),
with the picture itself for a vision target. A single picture is cited by its file name
(span "part", locator ""), a TIFF's pages as `p.2`.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from ingest import pictures
from ingest.pictures import PictureOptions
from ingest.types import Segment, StructuredRead


def read_image(data: bytes, name: str, options: PictureOptions | None = None
               ) -> StructuredRead:
    """One segment per page of the picture file `name`; raises PictureError (one line) for
    what cannot be read."""
    options = options or PictureOptions()
    what = PurePosixPath(name.rsplit(" > ", 1)[-1]).suffix.lower().lstrip(".") or "image"
    folder = hashlib.sha256(data).hexdigest()[:16]
    segments: list[Segment] = []
    kept = []
    sizes = []
    for number, page in enumerate(pictures.open_pages(data, options, f"{what} file"), 1):
        text = pictures.ocr(page, options)
        picture = pictures.prepare(page, f"{folder}/{number}.jpg", options) \
            if options.vision else None
        if picture is not None:
            kept.append(picture)
        sizes.append(f"{page.width}x{page.height}")
        segments.append(Segment(number - 1, pictures.tag(text, page.width, page.height, picture),
                                "page", number, number,
                                extra_tokens=picture.image_tokens if picture else 0))
    if len(segments) == 1:  # one picture: cited by its file name alone
        segments = [Segment(0, segments[0].text, "part", 1, 1,
                            extra_tokens=segments[0].extra_tokens, locator="")]
    flags = [] if options.ocr else ["no-ocr"]
    meta = {"pages": str(len(segments)), "size": sizes[0] if sizes else ""}
    return StructuredRead("image", segments, meta, flags, pictures=kept)
