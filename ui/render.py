"""Pictures and snippets for checking an answer: cited code lines highlighted in context, a PDF
page drawn with the passage marked, the corpus as a treemap of the model's window. Pure
functions (no Streamlit), so they are tested directly."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import plotly.graph_objects as go
import pymupdf

from ingest.pdf import image_secret_rects, secret_rects

MAX_SIDE = 1600
WITHHELD = "picture withheld: the page holds a redacted secret"


class PictureWithheld(ValueError):
    """A page or frame whose secret cannot be hidden on its picture: its text is shown instead."""


def safe_answer(text: str) -> str:
    """An answer as markdown in which no image can form (inline, reference-style, nested alt
    text): a document that injects `![](https://...)` must not make the reader's browser fetch
    an address (and leak what is in the URL). Raw HTML is never rendered by st.markdown."""
    return text.replace("![", "!\\[")


# the signs that mean something inside one line (`#`, `-`, `+`, `.` only at a line's start)
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()!|~<>$:&])")


def md_plain(text: object) -> str:
    """A value a document controls (a path, a reason) inside a Streamlit label or caption, as
    written: every Markdown sign escaped. Labels render links and images (`![](https://...)`
    in a file name would make the reader's browser fetch an address), `$...$` as math and
    `:name:` as icons; line breaks as spaces (a label is one line)."""
    return _MARKDOWN.sub(r"\\\1", re.sub(r"\s+", " ", str(text)))


def safe_text(text: str) -> str:
    """Untrusted text (a question, a passage) as inert markdown: images and HTML escaped."""
    return safe_answer(html.escape(text, quote=False))


def code_excerpt_html(lines: list[str], first: int, last: int, context: int = 6,
                      language: str = "") -> str:
    """Lines first..last (1-based) marked, with `context` lines either side, numbered."""
    first = max(1, min(first, len(lines)))
    last = max(first, min(last, len(lines)))
    lo, hi = max(1, first - context), min(len(lines), last + context)
    rows = []
    for n in range(lo, hi + 1):
        mark = first <= n <= last
        style = "background:#fff3b0;" if mark else ""
        rows.append(f'<div class="sl-line{" sl-cited" if mark else ""}" style="{style}">'
                    f'<span style="color:#888;user-select:none;display:inline-block;'
                    f'width:4em;text-align:right;margin-right:1em">{n}</span>'
                    f"{html.escape(lines[n - 1]) or '&nbsp;'}</div>")
    lang = f' data-language="{html.escape(language)}"' if language else ""
    return (f'<pre class="sl-code"{lang} style="font-size:0.85em;line-height:1.35;'
            f'white-space:pre;overflow-x:auto;padding:0.5em">{"".join(rows)}</pre>')


def _needles(passage: str) -> list[str]:
    """Pieces of a passage to look for on the page: each line, long lines cut to 60 chars
    (PDF text search matches within a line of the page)."""
    out = []
    for line in passage.split("\n"):
        line = " ".join(line.split())
        if len(line) >= 4:
            out.append(line[:60])
    return out


def _hide_secrets(doc: pymupdf.Document, number: int, name: str, flagged: bool) -> None:
    """Black out page `number`'s secrets (the in-memory copy's text under them is removed too);
    PictureWithheld when one cannot be located, or ingest found one the text layer does not
    show (an OCRed page). The page's pictures are OCRed for secrets too (when tesseract is
    installed): their pixels are boxed the same way."""
    rects = secret_rects(doc, number, name)
    if rects is None or (flagged and not rects):
        raise PictureWithheld(WITHHELD)
    pictured = image_secret_rects(doc, number, name)  # a key in a screenshot on the page
    if pictured is None:
        raise PictureWithheld(WITHHELD)
    rects += pictured
    if rects:
        p = doc.load_page(number - 1)
        for rect in rects:
            p.add_redact_annot(rect + (-1, -1, 1, 1), fill=(0, 0, 0))
        p.apply_redactions(images=pymupdf.PDF_REDACT_IMAGE_PIXELS,
                           graphics=pymupdf.PDF_REDACT_LINE_ART_NONE)


def pdf_page_png(file: Path, page: int, passage: str = "", zoom: float = 1.5,
                 flagged: bool = False) -> tuple[bytes, int]:
    """Page `page` (1-based) of a PDF as PNG, with every piece of `passage` found on it
    highlighted; also how many marks were drawn. Secrets on the page are drawn as black boxes
    (`flagged`: ingest found one there); PictureWithheld when that cannot be done. Annotations
    are not drawn (a note's or a form field's text is not the page text ingest scanned, and
    one drawn on top would cover the boxes). The file itself is never changed."""
    with pymupdf.open(file) as doc:
        if not 1 <= page <= doc.page_count:
            raise ValueError(f"{file.name} has no page {page}")
        _hide_secrets(doc, page, file.name, flagged)
        p = doc.load_page(page - 1)
        marks = 0
        for needle in _needles(passage):
            for rect in p.search_for(needle):
                p.draw_rect(rect, color=(0.95, 0.6, 0), fill=(1, 0.85, 0), fill_opacity=0.35,
                            width=1.2)
                marks += 1
        # a huge page (PDF allows 14,400 pt a side) is drawn at most MAX_SIDE pixels a side
        zoom = min(zoom, MAX_SIDE / max(p.rect.width, p.rect.height, 1))
        pix = p.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False, annots=False)
        return pix.tobytes("png"), marks


def video_frame_png(file: Path, seconds: float, width: int = 640) -> bytes:
    """The frame shown at `seconds` into a video (the first frame at or after it), as PNG."""
    import av

    with av.open(str(file)) as container:
        stream = container.streams.video[0]
        if stream.time_base is None:
            raise ValueError(f"{file.name}: no timing in the video stream")
        container.seek(int(max(0.0, seconds - 1) / stream.time_base), stream=stream,
                       backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time is not None and frame.time + 1e-3 >= seconds:
                height = max(1, round(frame.height * width / frame.width))
                image = frame.to_image().resize((width, height))
                out = io.BytesIO()
                image.save(out, format="PNG")
                return out.getvalue()
    raise ValueError(f"{file.name} has no frame at {seconds:.1f} s")


def picture_image(data: bytes, page: int = 1, max_pixels: int = 100_000_000):
    """Page `page` (1-based; a TIFF's pages, else 1) of a picture file as the RGB image ingest
    read (EXIF orientation applied, the same pixel limit), so a box in fractions of the size
    ingest recorded lands where the model meant it."""
    from itertools import islice

    from ingest.pictures import PictureOptions, open_pages

    pages = open_pages(data, PictureOptions(max_pixels=max_pixels), "picture")
    found = list(islice(pages, page - 1, page))
    if not found:
        raise ValueError(f"the picture has no page {page}")
    return found[0]


def picture_png(data: bytes, page: int = 1, marks: tuple = (), max_side: int = MAX_SIDE,
                max_pixels: int = 100_000_000) -> bytes:
    """A picture (or a TIFF's page) as PNG, at most `max_side` pixels a side, with an answer's
    grounding boxes and points drawn on it (app.services.grounding)."""
    from app.services.grounding import draw

    image = picture_image(data, page, max_pixels)
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    draw(image, list(marks)).save(out, format="PNG")
    return out.getvalue()


def marked_png(png: bytes, marks: tuple = ()) -> bytes:
    """A drawn picture (a PDF figure page as pdf_page_png draws it) with an answer's boxes on it:
    a figure page went to the model as the whole page, so its fractions are the page's."""
    from PIL import Image

    from app.services.grounding import draw

    if not marks:
        return png
    out = io.BytesIO()
    draw(Image.open(io.BytesIO(png)).convert("RGB"), list(marks)).save(out, format="PNG")
    return out.getvalue()


def inline_png(png: bytes, caption: str = "", width: int = 640) -> str:
    """A picture as HTML carrying its own bytes (a data: URL). st.image would serve it from
    /media/<id> to anyone who holds that URL, whoever's session drew it: a drawn page of a
    private corpus, or a private eval's heatmap, must travel only inside its own page."""
    import base64

    data = base64.b64encode(png).decode("ascii")
    cap = f'<figcaption style="font-size:0.85em;opacity:0.7">{html.escape(caption)}</figcaption>' \
        if caption else ""
    return (f'<figure style="margin:0"><img src="data:image/png;base64,{data}" '
            f'style="max-width:100%;width:{int(width)}px" alt="{html.escape(caption)}"/>'
            f"{cap}</figure>")


def download_link(data: str | bytes, file_name: str, label: str,
                  mime: str = "text/html") -> str:
    """A download carrying its own bytes (a data: URL), for the same reason as `inline_png`:
    st.download_button serves the file from /media/<id> to whoever holds that URL. Text is
    sent as UTF-8; bytes (a spreadsheet) as they are."""
    import base64

    raw = data.encode("utf-8") if isinstance(data, str) else data
    charset = ";charset=utf-8" if isinstance(data, str) else ""
    encoded = base64.b64encode(raw).decode("ascii")
    return (f'<a href="data:{html.escape(mime)}{charset};base64,{encoded}" '
            f'download="{html.escape(file_name)}">{html.escape(label)}</a>')


def marked_text(text: str, passage: str) -> str:
    """Text as escaped HTML with the passage's lines wrapped in <mark> (for pages whose file is
    gone, e.g. inside an archive)."""
    out = html.escape(text)
    for needle in _needles(passage):
        out = out.replace(html.escape(needle), f"<mark>{html.escape(needle)}</mark>")
    # one HTML block with no blank line in it: markdown never gets to parse the text inside
    out = out.replace("\n", "<br>")
    return f'<div style="font-size:0.85em">{out}</div>'


def window_treemap(items: list[tuple[str, int]], window: int, title: str = "") -> go.Figure:
    """Sources as rectangles inside folders, sized by tokens, with the unused part of the
    model's window as its own grey rectangle (or how far the corpus overflows it)."""
    ids, labels, parents, values, colors = ["corpus"], ["corpus"], [""], [0], ["#ffffff"]
    folders: set[str] = set()
    total = sum(t for _, t in items)
    for path, tokens in items:
        parts = path.split("/")
        parent = "corpus"
        for i in range(len(parts) - 1):
            fid = "corpus/" + "/".join(parts[: i + 1])
            if fid not in folders:
                folders.add(fid)
                ids.append(fid)
                labels.append(parts[i] + "/")
                parents.append(parent)
                values.append(0)
                colors.append("#dfe7f2")
            parent = fid
        ids.append("corpus/" + path)
        labels.append(parts[-1])
        parents.append(parent)
        values.append(max(tokens, 0))
        colors.append("#4c78a8")
    if window and total < window:
        ids.append("free")
        labels.append("free window")
        parents.append("corpus")
        values.append(window - total)
        colors.append("#e6e6e6")
    fig = go.Figure(go.Treemap(ids=ids, labels=labels, parents=parents, values=values,
                               branchvalues="remainder", marker={"colors": colors},
                               hovertemplate="%{label}<br>%{value:,} tokens<extra></extra>",
                               texttemplate="%{label}<br>%{value:,}"))
    share = total / window if window else 0
    fig.update_layout(margin={"t": 30, "l": 0, "r": 0, "b": 0}, height=420,
                      title=title or f"{total:,} tokens = {share:.1%} of a {window:,}-token window")
    return fig
