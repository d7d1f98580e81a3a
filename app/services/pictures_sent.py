"""How each picture of a context goes to the model: as an image (within the backend's limit,
ranked for the question when over it) or as its tag and words, and why: the "what went in"
view of pictures."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.services.citations import ContextSource
from engine.images import Choice
from ingest.pack import Block
from ingest.types import Document

#: a picture's tag as ingest writes it (a video frame, or an image, figure page or embedded
#: picture), with or without its image; group 1 the kind, 2 its attributes
PICTURE_TAG = re.compile(r'<(frame|picture)\s(?=t="|size=")([^>]*)>')
_ATTR = re.compile(r'([a-z_]+)="([^"]*)"')


@dataclass(frozen=True)
class Vision:
    """What a backend does with pictures: where their files are (None: a text-only backend)
    and how many one request may carry (None: no limit known)."""

    root: str | None
    limit: int | None


def picture_report(blocks: list[Block], sources: list[ContextSource], docs: list[Document],
                   choices: list[Choice], vision: Vision) -> list[dict]:
    """Each picture of the context in order: where it is, its size and cost, whether it goes
    as an image ("picture") or as its tag and words ("text"), and why."""
    chosen = {c.name: c for c in choices}
    withheld = {d.path for d in docs
                if any(f.startswith("picture-withheld:") for f in d.flags)}
    labels = {s.id: s.label().strip() for s in sources}
    out: list[dict] = []
    seen: set[str] = set()
    for block in blocks:
        for m in PICTURE_TAG.finditer(block.text):
            attrs = dict(_ATTR.findall(m.group(2)))
            name = attrs.get("image")
            label = labels.get(block.id, block.path)
            if m.group(1) == "frame" and attrs.get("t"):
                label = f"{block.path} @{attrs['t']}"
            entry = {"source": block.id, "path": block.path, "label": label,
                     "kind": m.group(1), "image": name, "size": attrs.get("size"),
                     "tiles": attrs.get("tiles"),
                     "image_tokens": int(attrs.get("image_tokens") or 0), "tokens": 0,
                     "sent": "text", "rank": None, "score": None}
            entry.update(_how(name, chosen, seen, len(choices), vision, block.path in withheld))
            if entry["sent"] == "picture":  # as the server bills it (the seam is text's)
                entry["tokens"] = entry["image_tokens"]
            if name:
                seen.add(name)
            out.append(entry)
    return out


def _how(name: str | None, chosen: dict[str, Choice], seen: set[str], total: int,
         vision: Vision, withheld: bool) -> dict:
    """How one picture goes, and why (the report's `sent`, `rank`, `score` and `why`)."""
    if not name:
        return {"why": "withheld at ingest: it shows a secret (--keep secrets sends it)"
                if withheld else "ingested for a text-only tokenizer: no picture kept"}
    if not vision.root:
        return {"why": "text-only backend"}
    if name in seen:
        return {"why": "the same picture goes once, with its first tag"}
    c = chosen.get(name)
    if c is None:
        return {"why": "its picture file is missing from the frames folder"}
    limit = vision.limit
    ranked = {"rank": c.rank, "score": c.score if c.rank else None}
    if not c.sent:
        return {**ranked, "why": f"over the server's limit of {limit}" + (
            f" (ranked {c.rank} of {total})" if c.rank else
            " (the question points at other pictures, or at none)")}
    if limit is None or total <= limit:
        why = ("within the server's limit of " + str(limit)) if limit is not None \
            else "the server sets no image limit"
        return {"sent": "picture", "why": why}
    if c.rank:
        return {**ranked, "sent": "picture", "why": f"ranked {c.rank} of {total}"}
    return {"sent": "picture", "why": f"spread evenly over the {total} (the server takes "
                                      f"{limit}; the question points at no more)"}
