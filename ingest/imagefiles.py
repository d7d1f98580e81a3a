"""Picture files as documents: PNG, JPEG, WebP, GIF (its first frame), BMP, TIFF (page by page).

Each picture (or TIFF page) is one segment: its OCR text in a `<picture>` tag (ingest/pictures.py),
with the picture itself for a vision target. A single picture is cited by its file name alone
(span "part", locator ""), a TIFF's pages as `p.2`. Pages are read one at a time: a 500-page
scan never holds more than one decoded page.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from ingest import pictures
from ingest.pictures import PictureOptions
from ingest.types import Picture, Segment, StructuredRead


def _what(name: str) -> str:
    """How the file is named in a status line: "png file", "tiff file"."""
    suffix = PurePosixPath(name.rsplit(" > ", 1)[-1]).suffix.lower().lstrip(".")
    return f"{suffix} file" if suffix else "picture file"


def read_image(data: bytes, name: str, options: PictureOptions | None = None
               ) -> StructuredRead:
    """One segment per page of the picture file `name`; raises PictureError (one line) for
    what cannot be read or is over a limit."""
    options = options or PictureOptions()
    folder = hashlib.sha256(data).hexdigest()[:16]
    flags: list[str] = []
    segments: list[Segment] = []
    kept: list[Picture] = []
    sizes: list[str] = []
    for number, page in enumerate(pictures.open_pages(data, options, _what(name), flags), 1):
        icon = number == 1 and pictures.decoration(page.width, page.height)
        text = "" if icon else pictures.ocr(page, options)
        picture = (pictures.prepare(page, f"{folder}/{number}.jpg", options)
                   if options.vision else None)
        kept.extend([picture] if picture is not None else [])
        sizes.append(f"{page.width}x{page.height}")
        segments.append(Segment(number - 1, pictures.tag(text, page.width, page.height, picture),
                                "page", number, number,
                                extra_tokens=picture.image_tokens if picture else 0))
        page.close()  # one decoded page at a time
    if len(segments) == 1:  # one picture: cited by its file name alone
        segments = [Segment(0, segments[0].text, "part", 1, 1,
                            extra_tokens=segments[0].extra_tokens, locator="")]
    if not options.ocr or not pictures.tesseract_available():
        flags.append("no-ocr")
    elif not any(_words(s.text) for s in segments):
        flags.append("no-text-read")
    meta = {"pages": str(len(segments)), "size": sizes[0] if sizes else ""}
    return StructuredRead("image", segments, meta, flags, pictures=kept)


def _words(tag: str) -> bool:
    """Whether a `<picture>` tag holds any text read on the picture."""
    return bool(tag.split(">", 1)[-1].rsplit("</picture>", 1)[0].strip())
