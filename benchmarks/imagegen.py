"""Deterministic screenshots and scans for bench_images.py: text, boxes and lines drawn with
Pillow at the sizes analysts meet (1280x800 to 3000x4000), saved as PNG, JPEG and TIFF.

Two kinds:
- screenshots (RGB): a title bar, a sidebar, boxes with labels joined by lines (a diagram or a
  dashboard), rows of text; sans-serif at 15-30 px, as on a screen.
- scans (greyscale): a page of serif text at 200-300 dpi sizes, rotated slightly (up to 1.5
  degrees), with noise; mostly JPEG, some TIFF, as a scanner writes them.

Every word drawn is recorded (its ground truth), so OCR can be scored by word recall. A file's
content depends only on (seed, ordinal): files can be made in any order, in parallel, and a run
with the same seed makes the same pictures.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import docgen  # benchmarks/, beside this file
from PIL import Image, ImageDraw, ImageFont

#: docgen's business vocabulary, plus network words for diagrams
WORDS = docgen.WORDS + ("router", "switch", "uplink", "gateway", "firewall", "server",
                        "storage", "backup", "cluster", "latency", "packet")


#: (width, height) of screenshots: laptop, full HD, QHD, a 4K-wide capture
SCREEN_SIZES = ((1280, 800), (1440, 900), (1920, 1080), (2560, 1440), (3000, 2000))
#: (width, height) of scans: letter at 200 dpi, A4 at 300 dpi, a 12-megapixel phone capture
SCAN_SIZES = ((1700, 2200), (2480, 3508), (3000, 4000))
SCAN_SHARE = 0.4  # of the files
SANS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")
SERIF = ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf")


@dataclass(frozen=True)
class Made:
    """One generated picture: its file (relative to the corpus folder) and the words on it."""

    file: str
    kind: str  # "screenshot" or "scan"
    width: int
    height: int
    words: tuple[str, ...]


@cache
def font(serif: bool, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font of `size` px (Pillow's own where the system has none of ours)."""
    for path in SERIF if serif else SANS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def phrase(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(count)]


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], words: list[str], size: int,
          fill, serif: bool = False) -> int:
    """Draws `words` on one line; returns the line's width in pixels."""
    line = " ".join(words)
    draw.text(xy, line, font=font(serif, size), fill=fill)
    return int(draw.textlength(line, font=font(serif, size)))


def screenshot(rng: random.Random, width: int, height: int) -> tuple[Image.Image, list[str]]:
    """An application window: a title bar, a sidebar of menu words, a diagram of labelled boxes
    joined by lines, and a panel of text rows."""
    scale = width / 1280
    size = max(15, round(rng.randint(15, 20) * scale))
    img = Image.new("RGB", (width, height), (250, 250, 252))
    draw = ImageDraw.Draw(img)
    words: list[str] = []
    bar = round(size * 2.2)
    draw.rectangle((0, 0, width, bar), fill=(40, 60, 90))
    title = phrase(rng, 3)
    _text(draw, (size, bar // 4), title, size, (255, 255, 255))
    words += title
    side = round(width * 0.16)
    draw.rectangle((0, bar, side, height), fill=(235, 237, 242))
    y = bar + size
    while y < height * 0.6:
        item = phrase(rng, 1)
        _text(draw, (size, y), item, size, (30, 30, 30))
        words += item
        y += round(size * 2)
    words += _diagram(draw, rng, (side + size, bar + size, width - size, round(height * 0.55)),
                      size)
    y = round(height * 0.6)
    while y < height - 2 * size:
        row = phrase(rng, rng.randint(4, 9))
        _text(draw, (side + size, y), row, size, (20, 20, 20))
        words += row
        y += round(size * 1.8)
    return img, words


def _diagram(draw: ImageDraw.ImageDraw, rng: random.Random, area: tuple[int, int, int, int],
             size: int) -> list[str]:
    """Boxes on a grid, each with a one- or two-word label, joined by lines."""
    x0, y0, x1, y1 = area
    cols, rows = rng.randint(3, 5), rng.randint(2, 3)
    cw, rh = (x1 - x0) // cols, (y1 - y0) // rows
    centres, words = [], []
    for r in range(rows):
        for c in range(cols):
            label = phrase(rng, rng.randint(1, 2))
            w = int(draw.textlength(" ".join(label), font=font(False, size))) + 2 * size
            w = min(w, cw - size)
            bx, by = x0 + c * cw + (cw - w) // 2, y0 + r * rh + rh // 4
            box = (bx, by, bx + w, by + round(size * 2.4))
            draw.rectangle(box, outline=(60, 90, 140), width=max(2, size // 8),
                           fill=(225, 235, 250))
            _text(draw, (bx + size, by + round(size * 0.6)), label, size, (10, 10, 40))
            words += label
            centres.append(((box[0] + box[2]) // 2, box[3]))
    for a, b in zip(centres, centres[cols:], strict=False):
        draw.line((a, (b[0], b[1] - round(size * 2.4))), fill=(120, 120, 120), width=2)
    return words


def scan(rng: random.Random, width: int, height: int) -> tuple[Image.Image, list[str]]:
    """A printed page: a heading, paragraphs and a ruled table, greyscale, slightly rotated,
    with noise."""
    size = max(20, round(rng.randint(26, 34) * width / 2480))
    img = Image.new("L", (width, height), 245)
    draw = ImageDraw.Draw(img)
    margin = round(width * 0.1)
    words = phrase(rng, 3)
    _text(draw, (margin, margin), words, round(size * 1.6), 20, serif=True)
    y = margin + round(size * 4)
    table_at = rng.uniform(0.45, 0.6) * height
    while y < height - margin:
        if table_at and y > table_at:
            y, cells = _table(draw, rng, margin, y, width - margin, size)
            words += cells
            table_at = 0
            continue
        line: list[str] = []
        while True:
            nxt = rng.choice(WORDS)
            if draw.textlength(" ".join([*line, nxt]), font=font(True, size)) > width - 2 * margin:
                break
            line.append(nxt)
        _text(draw, (margin, y), line, size, 25, serif=True)
        words += line
        y += round(size * (1.6 if rng.random() < 0.85 else 3.2))
    img = img.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BICUBIC, fillcolor=245)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    return Image.blend(img, noise, rng.uniform(0.08, 0.14)), words


def _table(draw: ImageDraw.ImageDraw, rng: random.Random, x0: int, y: int, x1: int,
           size: int) -> tuple[int, list[str]]:
    """A ruled table of word cells; returns where text goes on below it, and its words."""
    cols, rows = 4, rng.randint(3, 6)
    rh, cw = round(size * 2), (x1 - x0) // cols
    words = []
    for r in range(rows + 1):
        draw.line((x0, y + r * rh, x1, y + r * rh), fill=40, width=2)
    for c in range(cols + 1):
        draw.line((x0 + c * cw, y, x0 + c * cw, y + rows * rh), fill=40, width=2)
    for r in range(rows):
        for c in range(cols):
            cell = phrase(rng, 1)
            _text(draw, (x0 + c * cw + size // 2, y + r * rh + size // 3), cell, size, 25,
                  serif=True)
            words += cell
    return y + rows * rh + size * 2, words


def spec(seed: int, ordinal: int) -> tuple[str, int, int, str]:
    """(kind, width, height, format) of picture `ordinal`: fixed by (seed, ordinal) alone."""
    rng = random.Random(f"{seed}:{ordinal}:spec")
    if rng.random() < SCAN_SHARE:
        w, h = rng.choice(SCAN_SIZES)
        return "scan", w, h, "tiff" if rng.random() < 0.25 else "jpg"
    w, h = rng.choice(SCREEN_SIZES)
    return "screenshot", w, h, "jpg" if rng.random() < 0.2 else "png"


def encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        img.save(out, "PNG", compress_level=6)
    elif fmt == "jpg":
        img.save(out, "JPEG", quality=85)
    else:  # a scanner's TIFF: deflate-compressed, its resolution recorded
        img.save(out, "TIFF", compression="tiff_adobe_deflate", dpi=(300, 300))
    return out.getvalue()


def make(seed: int, ordinal: int) -> tuple[Made, bytes]:
    """Picture `ordinal`: its record and its file's bytes."""
    kind, w, h, fmt = spec(seed, ordinal)
    rng = random.Random(f"{seed}:{ordinal}")
    img, words = (scan if kind == "scan" else screenshot)(rng, w, h)
    name = f"{kind}s/{kind}-{ordinal:05d}.{fmt}"
    return Made(name, kind, w, h, tuple(words)), encode(img, fmt)


def _write(job: tuple[Path, int, int]) -> Made:
    root, seed, ordinal = job
    made, data = make(seed, ordinal)
    path = root / made.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return made


def generate(root: Path, n: int, seed: int = 0, workers: int = 2) -> list[Made]:
    """Pictures 0..n-1 under `root` (screenshots/ and scans/), with truth.json holding each
    one's words; files already made by an earlier run with the same seed are kept."""
    truth_file = root / "truth.json"
    have = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    if have.get("seed") != seed:
        have = {"seed": seed, "files": []}
    made = [Made(**{**m, "words": tuple(m["words"])}) for m in have["files"][:n]]
    jobs = [(root, seed, i) for i in range(len(made), n)]
    if jobs:
        with get_context("fork").Pool(workers) as pool:
            made += pool.map(_write, jobs, chunksize=1)
    if len(made) > len(have["files"]):
        truth_file.write_text(json.dumps({"seed": seed, "files": [asdict(m) for m in made]}))
    return made


def files(root: Path, made: list[Made]) -> Iterator[Path]:
    return (root / m.file for m in made)
