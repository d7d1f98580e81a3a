"""Pictures inside structured documents (a slide's chart, a photo in a Word report): each becomes
a `<picture>` segment right after the part it sits in, read like a picture file.

Not every picture is a figure. Left out, so they cost neither OCR time nor image tokens:
- decorations: a picture under `MIN_SIDE` pixels on a side (a bullet, an icon; the readers also
  leave out pictures drawn over less than ~1% of their page or slide);
- repeats: the same bytes again (a picture shown twice is read once, at its first place), and
  bytes shown `REPEATED` times or more, and on at least half of a deck's slides (a logo on every
  slide: none of them);
- what Pillow cannot open (EMF, WMF, a damaged part) or what is over the pixel limit: a flag,
  never an error for the whole document.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from ingest import pictures
from ingest.pictures import PictureError, PictureOptions
from ingest.types import EmbeddedImage, Picture, Segment, StructuredRead

MAX_PICTURES = 200  # per file: what is read beyond this is flagged, not read
MIN_SIDE = 64  # pixels: anything smaller is an icon, a bullet or a rule
REPEATED = 3  # the same bytes this often: a logo or a decoration, not a figure
MAX_FLAGS = 20  # unreadable / over-limit pictures flagged per file


def insert_pictures(read: StructuredRead, options: PictureOptions, sha: str) -> StructuredRead:
    """`read` with its embedded images (read.images) as picture segments among its parts:
    each right after segment `after`, cited by its locator; parts renumbered in order."""
    flags = list(read.flags)
    slides = read.metadata.get("slides", "0")
    threshold = max(REPEATED, (int(slides) + 1) // 2 if slides.isdigit() else 0)
    images = _figures(read.images, flags, threshold)
    placed: dict[int, list[Segment]] = {}
    kept: list[Picture] = []
    for image in images:
        got = _read(image, options, f"{sha[:16]}/e{len(kept) + 1}.jpg", flags)
        if got is None:
            continue
        segment, picture = got
        placed.setdefault(max(image.after, -1), []).append(segment)
        if picture is not None:
            kept.append(picture)
    count = sum(len(v) for v in placed.values())
    meta = {**read.metadata, "pictures": str(count)} if read.images else dict(read.metadata)
    return replace(read, segments=_merge(read.segments, placed), flags=flags, metadata=meta,
                   images=[], pictures=[*read.pictures, *kept])


def _figures(images: list[EmbeddedImage], flags: list[str],
             threshold: int = REPEATED) -> list[EmbeddedImage]:
    """The images worth reading: the first MAX_PICTURES distinct ones, logos left out."""
    counts: dict[str, int] = {}
    digests = []
    for image in images:
        digest = hashlib.sha256(image.data).hexdigest()
        digests.append(digest)
        counts[digest] = counts.get(digest, 0) + 1
    out: list[EmbeddedImage] = []
    seen: set[str] = set()
    for image, digest in zip(images, digests, strict=True):
        if digest in seen:
            continue
        seen.add(digest)
        if counts[digest] >= threshold:
            _flag(flags, f"picture-repeated:{image.name or image.locator}: shown "
                         f"{counts[digest]} times (a logo or decoration), left out")
            continue
        if len(out) == MAX_PICTURES:
            flags.append(f"cut:pictures: more than {MAX_PICTURES} pictures; the rest not read")
            break
        out.append(image)
    return out


def _read(image: EmbeddedImage, options: PictureOptions, name: str,
          flags: list[str]) -> tuple[Segment, Picture | None] | None:
    """One image's segment (its OCR text in a `<picture>` tag) and, for a vision target, its
    JPEG; None for a decoration or a picture that cannot be read (flagged)."""
    where = image.name or image.locator
    try:
        page = next(pictures.open_pages(image.data, options, "picture"), None)
    except PictureError as exc:
        over = "over the limit" in str(exc) or "more than" in str(exc)
        _flag(flags, f"picture-{'too-large' if over else 'unreadable'}:{where}"
                     + (f": {str(exc).removeprefix('picture ')}" if over else ""))
        return None
    except Exception as exc:  # noqa: BLE001 Pillow's own bomb check, a plugin choking on bytes
        bomb = type(exc).__name__ == "DecompressionBombError"
        _flag(flags, f"picture-{'too-large' if bomb else 'unreadable'}:{where}"
                     + (f": {exc}" if bomb else ""))
        return None
    if page is None or min(page.width, page.height) < MIN_SIDE:
        return None
    text = pictures.ocr(page, options)
    picture = pictures.prepare(page, name, options) if options.vision else None
    segment = Segment(0, pictures.tag(text, page.width, page.height, picture), "part", 0, 0,
                      extra_tokens=picture.image_tokens if picture else 0,
                      locator=image.locator)
    return segment, picture


def _flag(flags: list[str], note: str) -> None:
    if note not in flags and sum(f.startswith("picture-") for f in flags) < MAX_FLAGS:
        flags.append(note)


def _merge(segments: list[Segment], placed: dict[int, list[Segment]]) -> list[Segment]:
    """The parts with each picture after the part it sits in, numbered 0.. (parts 1..)."""
    ordered: list[Segment] = list(placed.get(-1, []))
    for i, seg in enumerate(segments):
        ordered.append(seg)
        ordered += placed.get(i, [])
    last = len(segments) - 1  # a picture said to follow a part past the end: at the end
    ordered += [s for after, group in placed.items() if after > last for s in group]
    return [replace(seg, order=i, start=i + 1, end=i + 1) if seg.span_kind == "part"
            else replace(seg, order=i) for i, seg in enumerate(ordered)]
