"""Interleave a prompt's video frames as image parts, for vision-capable OpenAI-style servers.

Packed video frames look like `<frame t="00:01:23.500" image_tokens="727" tiles="2x2"
image="ab12/83500.jpg">words on the frame</frame>`. A vision request carries each frame's JPEG as
an `image_url` part (a data URL: nothing to fetch) right after its tag, so the model sees the
picture between its timestamp and its words, in time order with the rest of the text. A server
takes a limited number of images per prompt (vLLM: `--limit-mm-per-prompt`, 999 by default in
0.32; scoutlens's own launch sets 5 for Llama 4, the most Meta tested): beyond it, frames spread
over the video go as pictures and the rest as their time and words.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

FRAME_TAG = re.compile(r'<frame\b[^>]*\bimage="([^"]+)"[^>]*>')
COST = re.compile(r'\bimage_tokens="(\d+)"')
#: where the text is split around an image its BPE seam costs about one token more (measured
#: against vLLM's billed prompt_tokens with a tiny Llama 4)
SEAM_TOKENS = 1


def spread(n: int, limit: int | None) -> list[int]:
    """`limit` of `n` indexes spread evenly over them, the first and the last included: which
    frames of a video go as pictures when the server takes fewer than it has."""
    if limit is None or n <= limit:
        return list(range(n))
    if limit <= 0:
        return []
    if limit == 1:
        return [0]
    return sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})


def _sent(text: str, root: Path, limit: int | None = None):
    """(tag match, file) for each frame whose picture goes out: its file exists inside `root`,
    and it is among the `limit` spread over the frames (the others go as their tag's time and
    words only)."""
    root = root.resolve()
    found = []
    for m in FRAME_TAG.finditer(text):
        path = (root / m.group(1)).resolve()
        if path.is_relative_to(root) and path.is_file():
            found.append((m, path))  # a name from a document never reads outside the folder
    for i in spread(len(found), limit):
        yield found[i]


def image_cost(text: str, root: Path, limit: int | None = None) -> tuple[int, int]:
    """(images, tokens) the pictures in `text` add to a request, as the server counts them: each
    frame's Llama 4 tile cost (written at ingest as `image_tokens`) plus its seam."""
    images = tokens = 0
    for m, _ in _sent(text, root, limit):
        cost = COST.search(m.group(0))
        images += 1
        tokens += (int(cost.group(1)) if cost else 0) + SEAM_TOKENS
    return images, tokens


def content_parts(text: str, root: Path, limit: int | None = None) -> list[dict] | None:
    """OpenAI chat content parts for `text`, or None when it holds no frame image to send. At
    most `limit` pictures (the server's --limit-mm-per-prompt; more is an HTTP 400)."""
    parts: list[dict] = []
    pos = 0
    images = 0
    for m, path in _sent(text, root, limit):
        parts.append({"type": "text", "text": text[pos:m.end()]})
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}})
        pos = m.end()
        images += 1
    if not images:
        return None
    parts.append({"type": "text", "text": text[pos:]})
    return parts
