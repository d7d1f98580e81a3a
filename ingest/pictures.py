"""Pictures as Scout reads them: decoded safely, read by OCR, and (for a vision target) scaled to
Llama 4's 336-px tile canvas with their exact image-token cost.

Every picture scoutlens ingests goes through here: image files (ingest/imagefiles.py), a PDF
page that carries a figure (ingest/pdf.py), a picture inside a Word, PowerPoint or mail file
(ingest/embedded.py). A picture becomes the text of its segment as a `<picture>` tag:

    text target:   <picture size="1280x800">words read on it</picture>
    vision target: <picture size="1280x800" image_tokens="727" tiles="2x2"
                    image="ab12cd34ef56ab78/1.jpg">words read on it</picture>

so a text-only model reads its words, retrieval finds it by them, and a vision backend sends the
JPEG right after the tag (engine/images.py), as it does a video's frames.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.ocr import ocr_rgb, tesseract_available
from ingest.types import IngestError, Picture
from ingest.video import TILE, image_tokens, tile_grid


class PictureError(IngestError):
    """A picture that cannot be read: corrupt, truncated, not an image, or over a limit."""


@dataclass(frozen=True)
class PictureOptions:
    vision: bool = False  # keep a JPEG per picture and write its image tokens
    ocr: bool = True
    ocr_language: str = "eng"
    #: a decompression bomb (a 50,000 x 50,000 PNG is 2.5 gigapixels) is refused from its
    #: header, before any pixel is decoded
    max_pixels: int = 100_000_000
    max_tiles: int = 16  # Llama 4's processor allows 16 tiles (4x4: 2,467 tokens)
    max_pages: int = 1_000  # pages of a multi-page TIFF


def open_pages(data: bytes, options: PictureOptions, what: str = "image") -> Iterator:
    """Each page of a picture file (one for most; a TIFF's pages in turn; a GIF's first frame)
    as an RGB PIL image, EXIF orientation applied. Raises PictureError with one line for what
    cannot be read or is over `max_pixels` / `max_pages`."""
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise PictureError(f"not a readable {what}: unknown or damaged picture data") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise PictureError(f"not a readable {what}: {exc}") from None
    frames = ImageSequence.Iterator(image) if image.format in ("TIFF", "MPO") else [image]
    for number, page in enumerate(frames, 1):
        if number > options.max_pages:
            raise PictureError(f"{what} has more than {options.max_pages:,} pages")
        w, h = page.size
        if w * h > options.max_pixels:
            raise PictureError(f"{what} page {number} is {w:,} x {h:,} pixels, over the "
                               f"limit of {options.max_pixels:,}")
        try:
            rgb = ImageOps.exif_transpose(page).convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise PictureError(f"not a readable {what}: page {number}: {exc}") from None
        yield rgb


def ocr(image, options: PictureOptions) -> str:
    """The words on an RGB PIL image; "" without OCR."""
    if not options.ocr or not tesseract_available():
        return ""
    return ocr_rgb(image.tobytes(), image.width, image.height, options.ocr_language)


def prepare(image, name: str, options: PictureOptions) -> Picture:
    """The JPEG a vision model receives: scaled to fit its tile canvas (never up), aspect kept,
    so nothing is sent that the processor would throw away."""
    rows, cols = tile_grid(image.width, image.height, options.max_tiles)
    scale = min(1.0, cols * TILE / image.width, rows * TILE / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image if size == image.size else image.resize(size)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=85)
    return Picture(name, out.getvalue(), image.width, image.height, (rows, cols),
                   image_tokens(rows, cols))


def tag(text: str, width: int, height: int, picture: Picture | None = None) -> str:
    """A picture's segment text: its words in a `<picture>` tag; with `picture`, the tag also
    names the JPEG and its image tokens (a vision target)."""
    attrs = f'size="{width}x{height}"'
    if picture is not None:
        rows, cols = picture.grid
        attrs += (f' image_tokens="{picture.image_tokens}" tiles="{rows}x{cols}"'
                  f' image="{picture.name}"')
    body = text.replace("<", "‹").replace(">", "›")  # text read on a picture never closes its tag
    return f"<picture {attrs}>{body}</picture>\n"
