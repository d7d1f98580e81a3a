"""OCR with Tesseract: PDFs (page images), video frames and pictures.

Pictures and frames are read through libtesseract's C API (ctypes), the engine the `tesseract`
command runs, loaded once per process and given the pixels directly: no re-encode, no PDF
wrapper, no model load per picture. PyMuPDF's binding (a pixmap on a new PDF page, then
get_textpage_ocr) was 2.1x slower than the command on the same pictures and missed words
outside the main text block (a sidebar, boxes of a diagram: it reads a page as one block);
it stays the fallback where libtesseract cannot be loaded. Measured by
benchmarks/bench_images.py.

PyMuPDF is imported inside the functions: it costs ~0.4 s and most commands never OCR.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import os
import shutil
import threading


def limit_threads() -> None:
    """One OpenMP thread for Tesseract in an ingest worker process: with a pool of workers its
    threads fought the pool for the cores (a 2-core run spent 3x the CPU time in the kernel;
    one picture 14.5 s instead of 2.2 s). libgomp reads OMP_THREAD_LIMIT when it loads, so a
    worker sets it before its first OCR. Never in the main process: torch shares the loaded
    libgomp, and the embedded model answered nothing under that limit."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")

PSM_AUTO = 3  # the command's page segmentation (the API's default reads a page as one block)
#: a page fed crooked into a scanner: Tesseract's layout analysis drops whole blocks of a long-
#: lined page 1.4 degrees askew (2 of 16 generated scans read 2-10% of their words; 100% once
#: straightened), so a page skewed by MIN_SKEW to MAX_SKEW degrees is turned straight first
MIN_SKEW, MAX_SKEW, SKEW_STEP = 0.5, 3.0, 0.1
SKEW_SIDE = 600  # pixels: the skew is estimated on a copy this small (~30 ms)


OPENMP_LIBRARIES = ("libgomp", "libomp", "libiomp")


def openmp_loaded() -> bool:
    """Whether an OpenMP runtime is mapped into this process (Linux: /proc/self/maps); True
    where that cannot be told, the safe answer for a caller deciding whether to fork."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any(name in line for line in maps for name in OPENMP_LIBRARIES)
    except OSError:
        return True


@functools.cache
def tesseract_available() -> bool:
    """True if OCR works here: libtesseract starts with English (the engine OCR then uses), or
    PyMuPDF finds a tesseract binary on PATH and its tessdata. libtesseract first: importing
    PyMuPDF loads its layout models (0.5 s), which a folder without PDFs never needs."""
    return _engine("eng") is not None or _pymupdf_can_ocr()


#: where Tesseract looks for `<language>.traineddata` when TESSDATA_PREFIX is not set
TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
                 "/usr/share/tessdata", "/usr/local/share/tessdata",
                 "/opt/homebrew/share/tessdata")


LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                "/usr/lib", "/usr/local/lib", "/lib", "/opt/homebrew/lib")


def _library_file(name: str) -> str | None:
    """The file a library name (`libtesseract.so.5`) resolves to, its links followed."""
    if os.path.isabs(name):
        return os.path.realpath(name) if os.path.exists(name) else None
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    for folder in (*dirs, *LIBRARY_DIRS):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return os.path.realpath(path)
    return None


@functools.cache
def fingerprint(language: str) -> str:
    """What OCR's output depends on besides the picture, told without starting Tesseract
    (0.08 s): its library and the language's trained data (each by path, size and mtime), or
    PyMuPDF's version where it is the fallback. A remembered read is used only under the same
    fingerprint, so a new Tesseract or new language data reads every picture again."""
    parts = []
    name = ctypes.util.find_library("tesseract")
    found = _library_file(name) if name else None
    if found is not None:  # told by its file: loading it would map OpenMP into this process
        st = os.stat(found)
        parts.append(f"{found}:{st.st_size}:{st.st_mtime_ns}")
    elif name and (lib := _library()) is not None:
        try:
            version = lib.TessVersion
            version.restype = ctypes.c_char_p
            parts.append("tesseract:" + (version() or b"").decode(errors="replace"))
        except AttributeError:
            parts.append("tesseract:unknown")
    for lang in language.split("+"):  # "eng+deu": each language's data
        for folder in (os.environ.get("TESSDATA_PREFIX", ""), *TESSDATA_DIRS):
            path = os.path.join(folder, f"{lang}.traineddata") if folder else ""
            try:
                st = os.stat(path)
            except OSError:
                continue
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
            break
    if not name:
        try:
            from importlib.metadata import version as dist_version

            parts.append(f"pymupdf:{dist_version('pymupdf')}:{shutil.which('tesseract')}")
        except Exception:  # noqa: BLE001
            parts.append("pymupdf:none")
    return language + "|" + ";".join(parts)


def _pymupdf_can_ocr() -> bool:
    if shutil.which("tesseract") is None:
        return False
    import pymupdf

    get_tessdata = getattr(pymupdf, "get_tessdata", None)
    if get_tessdata is None:
        return False
    try:
        return bool(get_tessdata())
    except Exception:
        return False


@functools.cache
def _library() -> ctypes.CDLL | None:
    """libtesseract with the C API's signatures declared; None where it is not installed."""
    name = ctypes.util.find_library("tesseract")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    if lib is None:
        return None
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for fn, args, res in (
            ("TessBaseAPICreate", [], p), ("TessBaseAPIDelete", [p], None),
            ("TessBaseAPIInit3", [p, s, s], i), ("TessBaseAPISetPageSegMode", [p, i], None),
            ("TessBaseAPISetVariable", [p, s, s], i),
            ("TessBaseAPISetImage", [p, s, i, i, i, i], None),
            ("TessBaseAPIGetUTF8Text", [p], p), ("TessDeleteText", [p], None),
            ("TessBaseAPIClear", [p], None), ("TessBaseAPIEnd", [p], None)):
        try:
            func = getattr(lib, fn)
        except AttributeError:
            return None
        func.argtypes, func.restype = args, res
    return lib


class _Engine:
    """One TessBaseAPI with its language loaded; a lock, as an instance reads one picture at
    a time."""

    def __init__(self, lib: ctypes.CDLL, handle: int):
        self.lib, self.handle, self.lock = lib, handle, threading.Lock()

    def read(self, grey: bytes, width: int, height: int) -> str:
        with self.lock:
            self.lib.TessBaseAPISetImage(self.handle, grey, width, height, 1, width)
            text = self.lib.TessBaseAPIGetUTF8Text(self.handle)
            try:
                return ctypes.string_at(text).decode("utf-8", "replace") if text else ""
            finally:
                if text:
                    self.lib.TessDeleteText(text)
                self.lib.TessBaseAPIClear(self.handle)  # frees the picture and its results

    def close(self) -> None:
        self.lib.TessBaseAPIEnd(self.handle)
        self.lib.TessBaseAPIDelete(self.handle)


_engines: dict[tuple[int, str], _Engine | None] = {}
_engines_lock = threading.Lock()


def _engine(language: str) -> _Engine | None:
    """This process's engine for `language` (a forked worker makes its own); None if
    libtesseract or the language's data is missing."""
    key = (os.getpid(), language)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = _start(language)
        return _engines[key]


def _start(language: str) -> _Engine | None:
    lib = _library()
    if lib is None:
        return None
    handle = lib.TessBaseAPICreate()
    started = lib.TessBaseAPIInit3(handle, None, language.encode()) == 0 or (
        (where := _pymupdf_tessdata()) is not None
        and lib.TessBaseAPIInit3(handle, where, language.encode()) == 0)
    if not started:
        lib.TessBaseAPIDelete(handle)
        return None
    lib.TessBaseAPISetPageSegMode(handle, PSM_AUTO)
    lib.TessBaseAPISetVariable(handle, b"debug_file", os.devnull.encode())
    engine = _Engine(lib, handle)
    atexit.register(engine.close)  # else tesseract reports its caches as leaks
    return engine


@functools.cache
def _pymupdf_tessdata() -> bytes | None:
    try:
        import pymupdf

        found = pymupdf.get_tessdata()
    except Exception:
        return None
    return os.fsencode(found) if found else None


def ocr_rgb(rgb: bytes, width: int, height: int, language: str = "eng") -> str:
    """The words on an RGB picture (24-bit, row-major), read at its own resolution, as one line
    per text line; "" when nothing is found or OCR fails."""
    engine = _engine(language)
    try:
        text = _read_api(engine, rgb, width, height) if engine is not None \
            else _read_pymupdf(rgb, width, height, language)
    except Exception:
        return ""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _read_api(engine: _Engine, rgb: bytes, width: int, height: int) -> str:
    """Tesseract binarizes a grey picture: converting here hands it a third of the bytes."""
    from PIL import Image

    grey = straightened(Image.frombuffer("RGB", (width, height), rgb, "raw", "RGB", 0, 1)
                        .convert("L"))
    return engine.read(grey.tobytes(), grey.width, grey.height)


def straightened(grey):
    """The grey picture turned straight when its text lines are askew by MIN_SKEW to
    MAX_SKEW degrees; else the same picture."""
    from PIL import Image

    angle, background = skew(grey)
    if abs(angle) < MIN_SKEW:
        return grey
    return grey.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True,
                       fillcolor=background)


def skew(grey) -> tuple[float, int]:
    """(degrees to turn the picture by so its text lines run level, its background shade):
    the angle whose rows of ink are sharpest (the projection profile's largest jumps between
    rows), searched within MAX_SKEW on a small copy; 0 when no angle is clearly better than
    none (a photo, a blank page)."""
    import numpy as np
    from PIL import Image

    factor = max(1, max(grey.size) // SKEW_SIDE)
    small = np.asarray(grey.reduce(factor) if factor > 1 else grey)
    ink = small < small.mean() * 0.75
    if ink.mean() > 0.5:  # light text on a dark background
        ink = ~ink
    background = int(np.median(small[~ink])) if (~ink).any() else 255
    page = Image.fromarray(ink.astype(np.uint8) * 255)

    def sharpness(angle: float) -> float:
        rows = np.asarray(page.rotate(angle), dtype=np.float32).sum(axis=1)
        return float(np.square(np.diff(rows)).sum())

    steps = round(MAX_SKEW / SKEW_STEP)
    angles = [i * SKEW_STEP for i in range(-steps, steps + 1)]
    scores = [sharpness(a) for a in angles]
    best = max(range(len(angles)), key=scores.__getitem__)
    level = scores[steps]  # the angle 0
    if scores[best] <= level * 1.1:
        return 0.0, background
    return round(angles[best], 2), background


def _read_pymupdf(rgb: bytes, width: int, height: int, language: str) -> str:
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, width, height, rgb, False)
    doc = pymupdf.open()
    page = doc.new_page(width=width, height=height)
    page.insert_image(page.rect, pixmap=pix)
    tp = page.get_textpage_ocr(language=language, dpi=72, full=True)
    return page.get_text("text", textpage=tp, sort=True)
