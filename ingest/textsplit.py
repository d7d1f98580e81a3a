"""Splitting text into line-numbered segments that concatenate back to the original."""

from __future__ import annotations

from ingest.types import Segment

WINDOW_LINES = 80  # a segment is at most this many lines ...
SEEK_BLANK = 20  # ... and ends at a blank line within its last SEEK_BLANK lines when one exists


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n" kept; only "\\n" ends a line (unlike str.splitlines)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def line_count(text: str) -> int:
    return text.count("\n") + (0 if not text or text.endswith("\n") else 1)


def whole(text: str) -> list[Segment]:
    """One segment for the whole text (what packing needs; cheap)."""
    return [Segment(0, text, "lines", 1, max(1, line_count(text)))]


def windows(text: str, window: int = WINDOW_LINES, seek: int = SEEK_BLANK) -> list[Segment]:
    """Segments of up to `window` lines, cut at a blank line where possible (for retrieval)."""
    lines = split_lines(text)
    if not lines:
        return [Segment(0, "", "lines", 1, 1)]
    segments: list[Segment] = []
    start = 0
    while start < len(lines):
        end = min(start + window, len(lines))
        if end < len(lines):
            for cut in range(end, max(start + window - seek, start + 1), -1):
                if not lines[cut - 1].strip():
                    end = cut
                    break
        segments.append(Segment(len(segments), "".join(lines[start:end]), "lines",
                                start + 1, end))
        start = end
    return segments
