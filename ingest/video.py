"""Video with PyAV: frames kept at scene changes, each with a timestamp, its text and its cost.

Decoding runs straight through the video stream (threaded), but a frame is only converted and
compared at the sampling rate (`fps`): a candidate is kept when it differs enough from the last
kept frame (a scene change; near-duplicates are dropped) or when `fallback_s` passed without one,
up to `max_frames` (then the most distinct are kept). A sparse sampling rate decodes key frames
only. Each kept frame gets its Llama 4 image-token cost (336-px tiles, see `image_tokens`), the
text on it (OCR with Tesseract, through PyMuPDF), and subtitle cues (embedded streams or a
sidecar .srt/.vtt) come along with their times, so a recording of slides is searchable and
citable by time even for a text-only model.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.ocr import ocr_rgb, tesseract_available
from ingest.types import IngestError, Segment, timestamp

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi"})
TILE = 336
PATCH_TOKENS = 144  # 336 px / 14 px patches = 24 x 24, pixel shuffle 0.5 -> 144


class VideoError(IngestError):
    """A video that cannot be read: corrupt, truncated, no video stream, unknown codec."""


@dataclass(frozen=True)
class VideoOptions:
    fps: float = 1.0  # candidate frames per second
    max_frames: int = 120
    scene_threshold: float = 0.0018  # share of a 320x180 grey thumbnail's pixels that changed
    fallback_s: float = 60.0  # keep a frame at least this often, scene change or not
    max_tiles: int = 4  # Llama 4 allows 16; frames are many, so 4 (2x2) by default
    ocr: bool = True


@dataclass(frozen=True)
class Frame:
    t: float
    width: int
    height: int
    grid: tuple[int, int]  # tile rows, cols after resizing for Llama 4
    image_tokens: int
    text: str
    change: float  # difference from the previous kept frame (1.0 for the first)
    image: str = ""  # file name of the saved JPEG (vision targets), relative to the frames dir


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


@dataclass
class VideoResult:
    frames: list[Frame]
    cues: list[Cue]
    duration: float
    metadata: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    decoded: int = 0  # frames decoded (for the report and the benchmark)


# --- Llama 4 image tokens ------------------------------------------------------------------------

def tile_grid(width: int, height: int, max_tiles: int = 16) -> tuple[int, int]:
    """(rows, cols) of 336-px tiles Llama 4's processor picks: the smallest canvas that holds the
    image without shrinking it, else the canvas that shrinks it least (at most max_tiles)."""
    options = [(r, c) for r in range(1, max_tiles + 1) for c in range(1, max_tiles + 1)
               if r * c <= max_tiles]
    best_up, best_down = None, None
    for r, c in options:
        scale = min(c * TILE / width, r * TILE / height)
        key_area = r * c
        if scale >= 1:
            if best_up is None or (scale, key_area) < (best_up[0], best_up[1]):
                best_up = (scale, key_area, (r, c))
        elif best_down is None or (-scale, key_area) < (-best_down[0], best_down[1]):
            best_down = (scale, key_area, (r, c))
    return (best_up or best_down)[2]  # type: ignore[index]


def image_tokens(rows: int, cols: int) -> int:
    """Tokens of one image: one tile is <|image_start|><|image|> 144 patches <|image_end|>; more
    tiles add separators per row and a 144-patch global view (a 4x4 image costs 2,467)."""
    if rows * cols == 1:
        return 1 + 1 + PATCH_TOKENS + 1
    rows_cost = rows * (cols * PATCH_TOKENS + (cols - 1) + 1)
    return 1 + rows_cost + 1 + PATCH_TOKENS + 1


# --- subtitles -----------------------------------------------------------------------------------

_CUE_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")


def _seconds(m: re.Match) -> float:
    h = int(m.group(1) or 0)
    return h * 3600 + int(m.group(2)) * 60 + int(m.group(3)) + int(m.group(4).ljust(3, "0")) / 1000


def parse_subtitles(text: str) -> list[Cue]:
    """SRT or WebVTT cues."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln for ln in block.strip().split("\n") if ln.strip()]
        for i, line in enumerate(lines):
            if "-->" in line:
                times = list(_CUE_TIME.finditer(line))
                if len(times) >= 2:
                    body = " ".join(re.sub(r"<[^>]+>", "", ln).strip() for ln in lines[i + 1:])
                    if body:
                        cues.append(Cue(_seconds(times[0]), _seconds(times[1]), body))
                break
    return cues


def _sidecar_cues(path: Path | None) -> list[Cue]:
    if path is None:
        return []
    for suffix in (".srt", ".vtt"):
        side = path.with_suffix(suffix)
        if side.is_file():
            try:
                return parse_subtitles(side.read_text("utf-8", "replace"))
            except OSError:
                return []
    return []


# --- OCR -----------------------------------------------------------------------------------------

def _ocr(rgb, width: int, height: int) -> str:
    """Text on a frame, as one line (empty when nothing is found)."""
    return " ".join(ocr_rgb(rgb.tobytes(), width, height).split())


# --- decoding ------------------------------------------------------------------------------------

def read_video(data: bytes, options: VideoOptions = VideoOptions(),
               path: Path | None = None, frames_dir: Path | None = None) -> VideoResult:
    """Frames, cues and metadata of a video held in memory (`path` finds sidecar subtitles).
    With `frames_dir`, each kept frame is also saved as a JPEG sized for its tiles, for vision
    models that receive frames as images."""
    import av
    import numpy as np

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoError(f"not a readable video: {exc}") from None
    with container:
        if not container.streams.video:
            kind = "audio-only file" if container.streams.audio else "no video stream"
            raise VideoError(f"{kind}: nothing to sample")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        duration = float(container.duration / 1_000_000) if container.duration else 0.0
        if vs.duration and vs.time_base:
            duration = max(duration, float(vs.duration * vs.time_base))
        rate = float(vs.average_rate or 0) or 25.0
        if options.fps > 0 and 1.0 / options.fps >= 4.0 and rate:
            vs.codec_context.skip_frame = "NONKEY"  # sparse sampling: key frames are enough
        meta = {"codec": vs.codec_context.name or "", "width": str(vs.codec_context.width),
                "height": str(vs.codec_context.height), "fps": f"{rate:g}",
                "duration": timestamp(duration)}
        step = 1.0 / options.fps if options.fps > 0 else 1.0
        candidates: list[tuple[float, object, float]] = []  # (t, frame, change)
        last_thumb = None
        last_kept_t = -1e9
        next_t = 0.0
        decoded = 0
        flags: list[str] = []
        try:
            for frame in container.decode(vs):
                decoded += 1
                t = float(frame.time) if frame.time is not None else decoded / rate
                if t + 1e-6 < next_t:
                    continue
                next_t = t + step
                thumb = frame.reformat(width=320, height=180, format="gray").to_ndarray()
                thumb = thumb.astype(np.int16)
                # a new line of text on a slide moves few pixels a lot; compression noise moves
                # many pixels a little: count pixels that changed by more than 10%
                change = 1.0 if last_thumb is None else float(
                    (np.abs(thumb - last_thumb) > 25).mean())
                if change >= options.scene_threshold or t - last_kept_t >= options.fallback_s:
                    candidates.append((t, frame, change))
                    last_thumb, last_kept_t = thumb, t
        except (av.error.FFmpegError, ValueError) as exc:
            if not candidates:
                raise VideoError(f"cannot decode the video: {exc}") from None
            flags.append(f"truncated: decoding stopped at {timestamp(last_kept_t)} ({exc})")
        cues = _stream_cues(data) + _sidecar_cues(path)
    if not candidates:
        raise VideoError("no frames could be decoded (empty or zero-length video)")
    if len(candidates) > options.max_frames:
        flags.append(f"frame cap: kept {options.max_frames} of {len(candidates)} scene frames")
        first, rest = candidates[0], candidates[1:]
        rest = sorted(rest, key=lambda c: -c[2])[: options.max_frames - 1]
        candidates = [first] + sorted(rest, key=lambda c: c[0])
    do_ocr = options.ocr and _can_ocr()
    if options.ocr and not do_ocr:
        flags.append("no-ocr: tesseract not installed, frame text not read")
    frames = []
    folder = frames_dir / hashlib.sha256(data).hexdigest()[:16] if frames_dir else None
    for t, frame, change in candidates:
        w, h = frame.width, frame.height
        grid = tile_grid(w, h, options.max_tiles)
        text = ""
        if do_ocr:
            rgb = frame.to_ndarray(format="rgb24")
            text = _ocr(rgb, w, h)
        image = _save_jpeg(frame, grid, folder, t) if folder else ""
        frames.append(Frame(t, w, h, grid, image_tokens(*grid), text, round(change, 4), image))
    return VideoResult(frames, sorted(cues, key=lambda c: c.start), duration, meta, flags,
                       decoded)


def _save_jpeg(frame, grid: tuple[int, int], folder: Path, t: float) -> str:
    """The frame scaled to fit its tile canvas (aspect kept), as `<video sha>/<ms>.jpg`."""
    import pymupdf

    rows, cols = grid
    scale = min(cols * TILE / frame.width, rows * TILE / frame.height)
    w, h = max(1, int(frame.width * scale)), max(1, int(frame.height * scale))
    rgb = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
    name = f"{int(round(t * 1000))}.jpg"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pix = pymupdf.Pixmap(pymupdf.csRGB, w, h, rgb.tobytes(), False)
        (folder / name).write_bytes(pix.tobytes("jpg", jpg_quality=85))
    except OSError:
        return ""  # the frame's text and cost still count; only the picture is missing
    return f"{folder.name}/{name}"


def _can_ocr() -> bool:
    return tesseract_available()


def _stream_cues(data: bytes) -> list[Cue]:
    """Text subtitle streams inside the container (SubRip, WebVTT, ASS, mov_text)."""
    import av

    cues: list[Cue] = []
    try:
        with av.open(io.BytesIO(data)) as c:
            subs = [s for s in c.streams if s.type == "subtitle"]
            if not subs:
                return []
            for packet in c.demux(subs):
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                for sub in packet.decode():
                    for rect in getattr(sub, "rects", []) or [sub]:
                        text = getattr(rect, "text", None) or getattr(rect, "ass", b"")
                        if isinstance(text, bytes):
                            text = text.decode("utf-8", "replace")
                        text = re.sub(r"^(?:[^,]*,){8}", "", text or "")  # ASS fields
                        text = re.sub(r"\{[^}]*\}|\\N", " ", text).strip()
                        if text:
                            cues.append(Cue(start, end, text))
    except (av.error.FFmpegError, ValueError, AttributeError):
        return cues
    return cues


# --- as segments ---------------------------------------------------------------------------------

def segments(result: VideoResult, vision: bool = False) -> list[Segment]:
    """One segment per kept frame and per cue, in time order. Text targets get the frame's words;
    vision targets also get an image placeholder whose tokens are the frame's image cost."""
    items: list[tuple[float, int, str, int]] = []
    for f in result.frames:
        rows, cols = f.grid
        words = f.text or ""
        if vision:
            image = f' image="{f.image}"' if f.image else ""
            body = (f'<frame t="{timestamp(f.t)}" image_tokens="{f.image_tokens}" '
                    f'tiles="{rows}x{cols}"{image}>{words}</frame>\n')
        else:
            body = f'<frame t="{timestamp(f.t)}">{words}</frame>\n'
        items.append((f.t, 0, body, f.image_tokens if vision else 0))
    for cue in result.cues:
        items.append((cue.start, 1, f'<subtitle t="{timestamp(cue.start)}">{cue.text}'
                                    f"</subtitle>\n", 0))
    items.sort(key=lambda x: (x[0], x[1]))
    return [Segment(i, body, "time", int(t * 1000), int(t * 1000), extra_tokens=extra)
            for i, (t, _, body, extra) in enumerate(items)]
