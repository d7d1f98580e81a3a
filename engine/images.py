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


def content_parts(text: str, root: Path) -> list[dict] | None:
    """OpenAI chat content parts for `text`, or None when it holds no frame image to send."""
    parts: list[dict] = []
    pos = 0
    images = 0
    root = root.resolve()
    for m in FRAME_TAG.finditer(text):
        path = (root / m.group(1)).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            continue  # a name from a document must not read files outside the frames folder
        parts.append({"type": "text", "text": text[pos:m.end()]})
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}})
        pos = m.end()
        images += 1
    if not images:
        return None
    parts.append({"type": "text", "text": text[pos:]})
    return parts
