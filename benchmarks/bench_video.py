"""Video sampling speed: a generated 10-minute 720p30 recording of slides (a new slide every 20 s,
a moving marker so no two frames are identical), read with the default options (1 candidate
frame per second, scene changes kept, OCR on the kept frames). Target: at least 10x faster than
real time. Reports frames/s decoded and kept, with and without OCR.

The video is generated once into benchmarks/.tools/ (PyAV, libx264 ultrafast).
Usage: python benchmarks/bench_video.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
VIDEO = HERE / ".tools" / "slides-10min-720p30.mp4"
SECONDS, FPS, W, H = 600, 30, 1280, 720


def slide(text: str):
    import numpy as np
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=W / 2, height=H / 2)
    page.insert_text((40, 80), text, fontsize=24)
    pix = page.get_pixmap(dpi=144)
    arr = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)
    return arr[:H, :W, :3].copy()


def make_video() -> Path:
    import av

    if VIDEO.exists():
        return VIDEO
    VIDEO.parent.mkdir(parents=True, exist_ok=True)
    tmp = VIDEO.with_suffix(".tmp.mp4")
    slides = [slide(f"Slide {i + 1}: item {i * 37 % 101} of the quarterly plan")
              for i in range(SECONDS // 20)]
    with av.open(str(tmp), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(SECONDS * FPS):
            img = slides[i // (20 * FPS)].copy()
            x = (i * 4) % (W - 20)
            img[H - 24:H - 8, x:x + 16] = 0  # a moving marker: every frame differs a little
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    tmp.rename(VIDEO)
    return VIDEO


def main() -> None:
    from ingest.ocr import tesseract_available
    from ingest.video import VideoOptions, read_video

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    path = make_video()
    made = time.perf_counter() - t0
    data = path.read_bytes()
    report: dict = {"video": f"{SECONDS}s {W}x{H} {FPS}fps", "mb": round(len(data) / 1e6, 1),
                    "generated_s": round(made, 1), "ocr": tesseract_available()}
    for label, ocr in (("no_ocr", False), ("with_ocr", True)):
        times, result = [], None
        for _ in range(args.runs):
            t = time.perf_counter()
            result = read_video(data, VideoOptions(ocr=ocr))
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        assert result is not None
        report[label] = {"seconds": round(med, 2), "x_real_time": round(SECONDS / med, 1),
                         "decoded": result.decoded, "decoded_fps": round(result.decoded / med),
                         "kept": len(result.frames),
                         "kept_text_sample": [f.text for f in result.frames[:2]]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
