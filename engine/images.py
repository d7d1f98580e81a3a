"""Interleave a prompt's pictures as image parts, for vision-capable OpenAI-style servers.

Ingest writes a picture as a tag naming its JPEG under the frames folder: a video's frames as
`<frame t="00:01:23.500" image_tokens="727" tiles="2x2" image="ab12/83500.jpg">words</frame>`,
an image file, a PDF figure page or a picture inside a document as
`<picture size="1280x800" image_tokens="1887" tiles="3x4" image="ab12/1.jpg">words</picture>`.
A vision request carries each picture as an `image_url` part (a data URL: nothing to fetch)
right after its tag, so the model sees it between its tag and its words, in place.

A server takes a limited number of images per prompt (vLLM: `--limit-mm-per-prompt`, 999 by
default in 0.32; scoutlens's own launch sets 5 for Llama 4, the most Meta tested), frames and
pictures together. When more qualify than fit, `choose` sends the ones the question points at
(bm25 over each picture's words and the text around it, as retrieval ranks segments), and fills
the other places with an even spread over all of them that no question changes (a video's
frames spread over its length), so two questions share their prefix, and its KV cache, up to
the first picture one of them points at. The rest go as their tag and words. The choice
travels in CompletionRequest.pictures, so what is counted (`with_placeholders` for a server's
own tokenizer, `image_cost` for an estimate) and what is sent (`content_parts`) are the same
pictures.
"""

from __future__ import annotations

import base64
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: a frame or a picture whose image goes to a vision model: group 1 the kind, 2 the file name
IMAGE_TAG = re.compile(r'<(frame|picture)\b[^>]*\bimage="([^"]+)"[^>]*>')
COST = re.compile(r'\bimage_tokens="(\d+)"')
#: what Llama 4's chat template writes for an image part: one special token, which the server's
#: processor replaces by the image's tokens (`image_tokens` counts them all, itself included)
PLACEHOLDER = "<|image|>"
#: a count without the server's tokenizer adds this for the seam where the text is split
#: around an image (the server's own count of the split text, `with_placeholders`, is exact)
SEAM_TOKENS = 1
#: characters of text on each side of a picture that rank it (its caption, the page around it)
NEIGHBOUR_CHARS = 1_500
_MIME = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
         (b"GIF8", "image/gif"), (b"RIFF", "image/webp"))


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


def found(text: str, root: Path) -> list[tuple[re.Match, Path]]:
    """(tag match, file) for each picture of `text` that can go as an image: its file exists
    inside `root` (a name from a document never reads outside the folder). A picture named
    twice is one image: its first tag carries it, the others go as text."""
    root = root.resolve()
    out, seen = [], set()
    for m in IMAGE_TAG.finditer(text):
        name = m.group(2)
        if name in seen:
            continue
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            seen.add(name)
            out.append((m, path))
    return out


def _sent(text: str, root: Path, limit: int | None = None,
          pictures: Sequence[str] | None = None) -> Iterator[tuple[re.Match, Path]]:
    """The pictures that go out: those named in `pictures` (the choice `choose` made), else
    `limit` spread over them; never more than `limit` (more is an HTTP 400)."""
    every = found(text, root)
    if pictures is None:
        for i in spread(len(every), limit):
            yield every[i]
        return
    named = set(pictures)
    yield from [f for f in every if f[0].group(2) in named][:limit]


def image_cost(text: str, root: Path, limit: int | None = None,
               pictures: Sequence[str] | None = None) -> tuple[int, int]:
    """(images, tokens) the pictures in `text` add to a request, as the server counts them: each
    one's Llama 4 tile cost (written at ingest as `image_tokens`) plus its seam."""
    images = tokens = 0
    for m, _ in _sent(text, root, limit, pictures):
        images += 1
        tokens += tag_cost(m.group(0)) + SEAM_TOKENS
    return images, tokens


def with_placeholders(text: str, root: Path, limit: int | None = None,
                      pictures: Sequence[str] | None = None) -> tuple[str, int, int]:
    """(`text` with PLACEHOLDER right after each picture that goes, images, their tokens): the
    user turn as the chat template writes it for the server, so tokenizing it splits the text
    where the request does; its count less one per placeholder plus the images' tokens is what
    the server bills (equal to vLLM's prompt_tokens with Llama 4)."""
    out: list[str] = []
    pos = images = tokens = 0
    for m, _ in _sent(text, root, limit, pictures):
        out += [text[pos:m.end()], PLACEHOLDER]
        pos = m.end()
        images += 1
        tokens += tag_cost(m.group(0))
    out.append(text[pos:])
    return "".join(out), images, tokens


def tag_cost(tag: str) -> int:
    """The image tokens a picture's tag says it costs (0 when it says nothing)."""
    cost = COST.search(tag)
    return int(cost.group(1)) if cost else 0


def mime(data: bytes) -> str:
    """The data URL's type, from the file's first bytes (ingest writes JPEGs; be right anyway)."""
    for magic, kind in _MIME:
        if data.startswith(magic):
            return kind
    return "image/jpeg"


def content_parts(text: str, root: Path, limit: int | None = None,
                  pictures: Sequence[str] | None = None) -> list[dict] | None:
    """OpenAI chat content parts for `text`, or None when it holds no picture to send. At
    most `limit` pictures (the server's --limit-mm-per-prompt); with `pictures`, those named."""
    parts: list[dict] = []
    pos = 0
    for m, path in _sent(text, root, limit, pictures):
        parts.append({"type": "text", "text": text[pos:m.end()]})
        data = path.read_bytes()
        url = f"data:{mime(data)};base64,{base64.b64encode(data).decode()}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
        pos = m.end()
    if not parts:
        return None
    parts.append({"type": "text", "text": text[pos:]})
    return parts


# --- which pictures go when more qualify than the server takes ---------------------------------

@dataclass(frozen=True)
class Choice:
    """One picture that could go as an image, and whether it does."""

    name: str  # its file under the frames folder (the tag's image="...")
    score: float  # bm25 of the question over its words and neighbouring text (0: not asked)
    rank: int | None  # 1 = what the question points at most; None when nothing was ranked
    sent: bool


def choose(text: str, root: Path, query: str, limit: int | None) -> list[Choice]:
    """Which pictures of `text` go as images, in text order. All of them when the server takes
    them all. Else the ones the question points at (bm25, as retrieval ranks text), most
    relevant first, then the rest of `spread`'s even choice over all of them (the one a
    question that points at nothing gets, and prewarm sends), earliest first: a question changes
    the pictures, and so the cached prefix, only where it points at one the spread left out."""
    every = found(text, root)
    names = [m.group(2) for m, _ in every]
    if limit is None or len(every) <= limit:
        return [Choice(n, 0.0, None, True) for n in names]
    scores = _scores(text, [m for m, _ in every], query)
    base = set(spread(len(every), limit))
    order = sorted(range(len(every)), key=lambda i: (-scores[i], i not in base, i))
    sent = set(order[:max(0, limit)])
    ascending = sorted(scores)  # rank: 1 + how many score higher (ties share a rank)
    ranks = [1 + len(scores) - bisect_right(ascending, s) if s > 0 else None for s in scores]
    return [Choice(n, scores[i], ranks[i], i in sent) for i, n in enumerate(names)]


def _scores(text: str, tags: list[re.Match], query: str) -> list[float]:
    """bm25 of `query` over each picture's neighbourhood, plus bm25 over the path of its
    source (retrieval counts a path as text too), with retrieval's own terms and scoring
    (ingest.retrieval). Apart, so that a question naming a video scores all its frames alike
    (one path, one score) and they stay spread, whatever their words' lengths."""
    words = [_neighbourhood(text, tags, i) for i in range(len(tags))]
    paths = [_source_path(text, m.start()) for m in tags]
    return [round(a, 6) + round(b, 6) for a, b in zip(_bm25(words, query), _bm25(paths, query),
                                                        strict=True)]


def _bm25(texts: list[str], query: str) -> list[float]:
    from ingest.retrieval import SegmentIndex

    scores = [0.0] * len(texts)
    for hit in SegmentIndex.build((i, "", t) for i, t in enumerate(texts)).search(
            query, k=len(texts)):
        scores[hit.segment] = hit.score
    return scores


def _neighbourhood(text: str, tags: list[re.Match], i: int) -> str:
    """A picture's words and the text around it inside its source (the rest of its page, its
    caption, a video's subtitles between frames), up to the neighbouring pictures' tags and
    NEIGHBOUR_CHARS on each side."""
    m = tags[i]
    close = text.find(f"</{m.group(1)}>", m.end())
    end = m.end() if close < 0 else close + len(m.group(1)) + 3
    opening = text.rfind("<source ", 0, m.start())
    inside = text.find(">", opening, m.start()) + 1 if opening >= 0 else 0
    lo = max(inside, m.start() - NEIGHBOUR_CHARS, 0)
    if i > 0:
        before = tags[i - 1]
        shut = text.find(f"</{before.group(1)}>", before.end(), m.start())
        lo = max(lo, before.end() if shut < 0 else shut + len(before.group(1)) + 3)
    hi = min(x for x in (text.find("</source>", end), end + NEIGHBOUR_CHARS, len(text))
             if x >= 0)
    if i + 1 < len(tags):
        hi = min(hi, tags[i + 1].start())
    # words only: a tag's attributes (size, tiles, image) would make every picture match a
    # question that says "image" or "size", the empty ones first
    return _MARKUP.sub(" ", text[lo:max(hi, end)])


_MARKUP = re.compile(r"</?(?:frame|picture|subtitle)\b[^>]*>")


def _source_path(text: str, pos: int) -> str:
    """The path of the `<source>` a picture sits in (retrieval counts a path as text)."""
    start = text.rfind("<source ", 0, pos)
    if start < 0:
        return ""
    found_path = re.match(r'<source [^>]*?\bpath="([^"]*)"', text[start:start + 2_000])
    return found_path.group(1) if found_path else ""
