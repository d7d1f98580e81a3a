"""Interleave a prompt's video frames as image parts, for vision-capable OpenAI-style servers.

Packed video frames look like `<frame t="00:01:23.500" image_tokens="727" tiles="2x2"
image="ab12/83500.jpg">words on the frame</frame>`. A vision request carries each frame's JPEG as
an `image_url` part (a data URL: nothing to fetch) right after its tag, so the model sees the
picture between its timestamp and its words, in time order with the rest of the text.
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


def _sent(text: str, root: Path):
    """(tag match, file) for each frame whose picture goes out: the file exists inside `root`."""
    root = root.resolve()
    for m in FRAME_TAG.finditer(text):
        path = (root / m.group(1)).resolve()
        if path.is_relative_to(root) and path.is_file():
            yield m, path  # a name from a document must not read files outside the frames folder


def image_cost(text: str, root: Path) -> tuple[int, int]:
    """(images, tokens) the pictures in `text` add to a request, as the server counts them: each
    frame's Llama 4 tile cost (written at ingest as `image_tokens`) plus its seam."""
    images = tokens = 0
    for m, _ in _sent(text, root):
        cost = COST.search(m.group(0))
        images += 1
        tokens += (int(cost.group(1)) if cost else 0) + SEAM_TOKENS
    return images, tokens


def content_parts(text: str, root: Path) -> list[dict] | None:
    """OpenAI chat content parts for `text`, or None when it holds no frame image to send."""
    parts: list[dict] = []
    pos = 0
    images = 0
    for m, path in _sent(text, root):
        parts.append({"type": "text", "text": text[pos:m.end()]})
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}})
        pos = m.end()
        images += 1
    if not images:
        return None
    parts.append({"type": "text", "text": text[pos:]})
    return parts
