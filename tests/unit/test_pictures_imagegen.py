"""The pictures benchmark's generator (benchmarks/imagegen.py) makes what the figures claim:
screenshots and greyscale scans from 1280x800 to 3000x4000 in PNG, JPEG and TIFF, the same
bytes for the same seed, and a ground truth of the words drawn (word recall is scored on it)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import imagegen  # noqa: E402


def first(kind: str, fmt: str | None = None) -> int:
    return next(i for i in range(500) if imagegen.spec(0, i)[0] == kind
                and (fmt is None or imagegen.spec(0, i)[3] == fmt))


def test_mix_covers_kinds_formats_and_sizes() -> None:
    specs = [imagegen.spec(0, i) for i in range(400)]
    assert {s[0] for s in specs} == {"screenshot", "scan"}
    assert {s[3] for s in specs} == {"png", "jpg", "tiff"}
    pixels = [w * h for _, w, h, _ in specs]
    assert min(pixels) == 1280 * 800
    assert max(pixels) == 3000 * 4000


def test_same_seed_same_bytes_other_seed_other_picture() -> None:
    i = first("screenshot", "png")
    made, data = imagegen.make(0, i)
    again, same = imagegen.make(0, i)
    assert (made, data) == (again, same)
    assert imagegen.make(1, i)[1] != data


def test_screenshot_is_rgb_at_its_size_with_its_words() -> None:
    made, data = imagegen.make(0, first("screenshot", "png"))
    img = Image.open(io.BytesIO(data))
    assert (img.mode, img.size) == ("RGB", (made.width, made.height))
    assert len(made.words) > 40
    assert set(made.words) <= set(imagegen.WORDS)


def test_scan_is_greyscale_and_noisy() -> None:
    made, data = imagegen.make(0, first("scan"))
    img = Image.open(io.BytesIO(data))
    assert (img.mode, img.size) == ("L", (made.width, made.height))
    lo, hi = img.getextrema()
    assert hi - lo > 150  # ink and paper
    assert len(img.crop((0, 0, 64, 64)).getcolors(256)) > 8  # a margin is noise, not flat


def test_generate_writes_files_and_truth(tmp_path: Path) -> None:
    made = imagegen.generate(tmp_path, 2, seed=3, workers=1)
    assert [m.file for m in made] == [imagegen.make(3, i)[0].file for i in range(2)]
    assert all((tmp_path / m.file).is_file() for m in made)
    assert imagegen.generate(tmp_path, 2, seed=3, workers=1) == made  # read back, not remade
