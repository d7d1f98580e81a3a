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

import contextlib
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.ocr import ocr_rgb, tesseract_available
from ingest.types import IngestError, Picture
from ingest.video import TILE, image_tokens, tile_grid

#: the only decoders a picture file reaches: an EPS, PSD or font renamed `.png` is refused, not
#: handed to Pillow's other plugins (EPS would start Ghostscript)
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
#: what a file that is not a picture turns out to be, from its first bytes
_IMPOSTORS = ((b"PK\x03\x04", "a zip archive"), (b"%PDF", "a PDF"), (b"\x1f\x8b", "gzip data"),
              (b"\xd0\xcf\x11\xe0", "an Office (OLE2) file"), (b"<?xml", "XML"),
              (b"<svg", "SVG (XML)"), (b"<!doctype html", "HTML"), (b"<html", "HTML"),
              (b"%!ps", "PostScript"), (b"8bps", "a Photoshop file"))
#: a PNG's metadata chunks that are dropped before decoding: text (a draw.io export carries its
#: whole diagram in one), colour profiles, and EXIF blocks over 64 KB; megabytes of them, or a
#: compressed one that would expand like a bomb, then cost nothing and refuse no picture
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROPPED = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP"})
_MAX_PNG_EXIF = 65_536
#: EXIF orientation -> the transpose that shows the picture upright
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
            6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


class PictureError(IngestError):
    """A picture that cannot be read: corrupt, truncated, not an image, or over a limit."""


@dataclass(frozen=True)
class PictureOptions:
    vision: bool = False  # keep a JPEG per picture and write its image tokens
    ocr: bool = True
    ocr_language: str = "eng"
    #: a decompression bomb (a 50,000 x 50,000 PNG is 2.5 gigapixels) is refused from its
    #: header, before any pixel is decoded (`--max-image-pixels`, SCOUTLENS_MAX_IMAGE_PIXELS)
    max_pixels: int = 100_000_000
    max_tiles: int = 16  # Llama 4's processor allows 16 tiles (4x4: 2,467 tokens)
    max_pages: int = 1_000  # pages of a multi-page TIFF
    #: all pages of one file together: a 64 KB fax-compressed TIFF can claim ten 98-megapixel
    #: pages (26 s and 1.5 GB with OCR); later pages are cut, and the cut is flagged
    max_file_pixels: int = 2_000_000_000


def what_it_is(data: bytes) -> str:
    """What bytes that are not a picture look like, for the one-line status: "HTML", "a zip
    archive", "text", or "unknown or damaged picture data"."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for magic, name in _IMPOSTORS:
        if head.startswith(magic.lower()) or (name == "HTML" and magic in head):
            return name
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown or damaged picture data"
    return "text"


def lean_png(data: bytes) -> bytes:
    """A PNG without the metadata chunks in _PNG_DROPPED (and no EXIF over 64 KB); other
    files, and a PNG whose chunk list breaks off (Pillow then says how), as they are."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    kept, pos, dropped = [_PNG_SIGNATURE], len(_PNG_SIGNATURE), False
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if end > len(data):
            break
        if kind in _PNG_DROPPED or (kind == b"eXIf" and length > _MAX_PNG_EXIF):
            dropped = True
        else:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(kept) + data[pos:] if dropped else data


def _decode_header(data: bytes, what: str, max_pixels: int):
    """The picture's Pillow image with only its header read (no pixel decoded), through the
    decoders in FORMATS alone. Pillow's own bomb check (a global, fixed limit) is not used:
    the caller checks the size against the configured limit instead. (A GIF whose first frame
    reaches past its screen still meets Pillow's check while its header is read: told with
    the configured limit too.)"""
    from PIL import (  # noqa: F401 registering these decoders, and only these
        BmpImagePlugin,
        GifImagePlugin,
        Image,
        JpegImagePlugin,
        PngImagePlugin,
        TiffImagePlugin,
        WebPImagePlugin,
    )

    prefix = data[:16]
    for fmt in FORMATS:
        factory, accept = Image.OPEN.get(fmt, (None, None))
        if factory is None or not _accepts(accept, prefix):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return factory(io.BytesIO(data), "")
        except Image.DecompressionBombError as exc:
            claimed = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(claimed[1]):,} pixels" if claimed else "too many pixels"
            raise PictureError(f"{what} claims {size}, over the limit of {max_pixels:,} "
                               "(--max-image-pixels)") from None
        except Exception as exc:  # noqa: BLE001 a decoder choking on hostile bytes
            raise PictureError(f"not a readable {what}: {_reason(exc)}") from None
    raise PictureError(f"not a {what}: it holds {what_it_is(data)}")


def _accepts(accept, prefix: bytes) -> bool:
    """Whether a decoder claims these first bytes (its check may itself fail on a short file)."""
    try:
        return accept is None or accept(prefix) is True
    except Exception:  # noqa: BLE001
        return False


def _reason(exc: BaseException) -> str:
    """A decoder's complaint in a few words; its kind when the words say nothing (a bare tag
    number from a KeyError)."""
    text = " ".join(str(exc).split())[:160]
    if not any(c.isalpha() for c in text):
        text = f"{type(exc).__name__} {text}".strip()
    if "truncated" in text or isinstance(exc, EOFError):
        return f"truncated or damaged ({text})"
    return text


def _check_size(width: int, height: int, options: PictureOptions, where: str) -> None:
    if width < 1 or height < 1:
        raise PictureError(f"{where} is {width} x {height} pixels: no picture")
    if width * height > options.max_pixels:
        raise PictureError(f"{where} is {width:,} x {height:,} pixels ({width * height:,}), over "
                           f"the limit of {options.max_pixels:,} (--max-image-pixels)")


def _pages(image, options: PictureOptions, what: str) -> Iterator:
    """A TIFF's pages in turn (each seek reads one page's header); any other format's first
    frame (a GIF's, an animated WebP's or PNG's, an MPO's first picture)."""
    yield image
    if image.format != "TIFF":
        return
    for number in range(2, options.max_pages + 2):
        try:
            image.seek(number - 1)
        except EOFError:
            return
        except Exception as exc:  # noqa: BLE001 a broken page table
            raise PictureError(f"not a readable {what}: page {number}: {_reason(exc)}") from None
        if number > options.max_pages:
            raise PictureError(f"{what} has more than {options.max_pages:,} pages")
        yield image


def _upright_rgb(page, reuse: bool):
    """The page decoded as RGB, turned upright by its EXIF orientation; transparency is laid
    on white (a screenshot's black text on a transparent background stays readable). `reuse`:
    the page is not read again (not a TIFF's), so an RGB one is returned as decoded, not
    copied (a 100-megapixel picture is 300 MB a copy)."""
    from PIL import Image

    try:
        orientation = page.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 a damaged EXIF block only loses the orientation
        orientation = 1
    if page.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit and float scans
        low, high = page.getextrema()
        page = page.convert("F").point(lambda v: (v - low) * 255 / max(high - low, 1))
    if page.mode in ("RGBA", "LA", "PA") or "transparency" in page.info:
        rgba = page if page.mode == "RGBA" else page.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, "white")
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    elif page.mode == "RGB" and reuse:
        page.load()
        rgb = page
    else:
        rgb = page.convert("RGB")
    method = _UPRIGHT.get(orientation if isinstance(orientation, int) else 1)
    return rgb.transpose(getattr(Image.Transpose, method)) if method else rgb


def open_pages(data: bytes, options: PictureOptions, what: str = "image",
               flags: list[str] | None = None) -> Iterator:
    """Each page of a picture file (one for most; a TIFF's pages in turn; a GIF's first frame)
    as an RGB PIL image, EXIF orientation applied, one page in memory at a time. Every page's
    size is checked against `max_pixels` from its header, before its pixels are decoded.
    Raises PictureError with one line for what cannot be read or is over `max_pixels` /
    `max_pages`. `flags` gets "animated:first-frame" for an animation (GIF, WebP, APNG; an
    MPO's second picture is a stereo camera's other eye, not an animation)."""
    image = _decode_header(lean_png(data), what, options.max_pixels)
    if flags is not None and image.format in ("GIF", "WEBP", "PNG") and _animated(image):
        flags.append("animated:first-frame")
    total = 0
    for number, page in enumerate(_pages(image, options, what), 1):
        where = what if number == 1 and image.format != "TIFF" else f"{what} page {number}"
        _check_size(*page.size, options, where)
        total += page.size[0] * page.size[1]
        if total > options.max_file_pixels and number > 1:
            if flags is not None:
                flags.append(f"cut: pages {number}- not read (over {options.max_file_pixels:,}"
                             " pixels a file)")
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rgb = _upright_rgb(page, reuse=image.format != "TIFF")
        except MemoryError:
            raise PictureError(f"{where}: too large to decode") from None
        except Exception as exc:  # noqa: BLE001 truncated data, a broken decoder stream
            raise PictureError(f"not a readable {what}: {_reason(exc)}"
                               + (f" on page {number}" if image.format == "TIFF" else "")
                               ) from None
        yield rgb


def _animated(image) -> bool:
    """Whether more frames follow the first (only the first is read); False when that cannot
    be told (a damaged second frame: the first is still read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(getattr(image, "is_animated", False))
    except Exception:  # noqa: BLE001
        return False
    finally:
        with contextlib.suppress(Exception):
            image.seek(0)


#: a picture file under this many pixels on both sides is an icon or a tracking pixel: left
#: out of a corpus (ingest/documents.py), so it is not OCR'd either (the standard library's
#: 20 icons cost a cold pack 0.3 s of OCR)
DECORATION_SIDE = 64


def decoration(width: int, height: int) -> bool:
    return width < DECORATION_SIDE and height < DECORATION_SIDE


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
    small = image if size == image.size else image.resize(size, reducing_gap=3.0)
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
