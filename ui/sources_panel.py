"""The sources of an answer, each shown so it can be checked: code lines highlighted in their
file, a PDF page drawn with the passage marked, a video moment, a picture with the boxes the
answer drew on it and its OCR text beside it, a part of an Office file, web page, mail or e-book
(its slide, sheet range, section or mail named), or the matched text."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from app.services.access import CorpusNotFound
from app.services.grounding import Grounded, answer_marks
from app.services.viewing import SourcePart, SourceView, source_view
from app.settings import get_settings
from ui.auth import who
from ui.render import (
    WITHHELD,
    PictureWithheld,
    code_excerpt_html,
    inline_png,
    marked_png,
    marked_text,
    md_plain,
    pdf_page_png,
    picture_png,
    video_frame_png,
)

_KEPT_JPEG = re.compile(r' image="([0-9a-f]{16}/\d{1,6}\.jpg)"')
_WORDS = re.compile(r"<picture [^>]*>(.*?)</picture>", re.DOTALL)


def _badge(src: dict) -> str:
    if src.get("kind") == "matched":
        return ":material/search: matched (the answer cited nothing; this text matches it best)"
    return ":material/verified: verified citation" if src.get("verified") else (
        f":material/warning: unverified: {md_plain(src.get('why', ''))}")


def _label(src: dict) -> str:
    where = ""
    if src.get("part"):
        where = f" {src['part']}"
    elif src.get("page") is not None:
        where = f" p.{src['page']}"
    elif src.get("t"):
        where = f" @ {src['t']}"
    elif src.get("lines"):
        a, _, b = str(src["lines"]).partition("-")
        where = f":L{a}-L{b}"
    ref = str(src.get("id", "?"))
    ref = ref if ref.isalnum() else md_plain(ref)  # `[S1]` is no link: no `(` follows it
    return f"[{ref}] {md_plain(src.get('path', '?'))}{md_plain(where)}"


@st.cache_data(max_entries=64, show_spinner=False)
def _page_png(file: str, mtime_ns: int, page: int, quote: str, flagged: bool) -> tuple[bytes, int]:
    """Drawn once per file version, page and passage, not on every rerun of the chat (a page
    whose secret cannot be hidden raises, and is not cached)."""
    return pdf_page_png(Path(file), page, quote, flagged=flagged)


@st.cache_data(max_entries=64, show_spinner=False)
def _frame_png(file: str, mtime_ns: int, seconds: float) -> bytes:
    return video_frame_png(Path(file), seconds)


@st.cache_data(max_entries=64, show_spinner=False)
def _picture_png(file: str, mtime_ns: int, page: int, marks: tuple[Grounded, ...]) -> bytes:
    return picture_png(Path(file).read_bytes(), page, marks,
                       max_pixels=get_settings().max_image_pixels)


def _picture_file(view: SourceView, part: SourcePart) -> tuple[Path, int] | None:
    """Where the picture is drawn from: the original file (its page), else the JPEG kept for a
    vision model (the same picture, scaled; boxes are fractions, so they land the same)."""
    if view.file is not None:
        return view.file, part.start if part.kind == "page" else 1
    kept = _KEPT_JPEG.search(part.text)
    jpeg = get_settings().frames_dir / kept.group(1) if kept else None
    return (jpeg, 1) if jpeg is not None and jpeg.is_file() else None


def _draw_picture(view: SourceView, part: SourcePart, marks: tuple[Grounded, ...],
                  name: str) -> None:
    withheld = view.picture_withheld(part)
    found = None if withheld else _picture_file(view, part)
    if withheld:
        st.caption(withheld)
    elif found is None:
        st.caption("the picture is no longer on disk; its text is beside it")
    else:
        file, page = found
        try:
            png = _picture_png(str(file), file.stat().st_mtime_ns, page, marks)
            boxes = f" ({len(marks)} marked by the answer)" if marks else ""
            st.markdown(inline_png(png, f"{name}{boxes}"), unsafe_allow_html=True)
        except Exception as exc:  # noqa: BLE001 - a damaged picture: its text still shows
            st.caption(f"the picture cannot be drawn ({md_plain(exc)})")


def _picture(view: SourceView, part: SourcePart, src: dict, marks: list[Grounded]) -> None:
    """The picture (drawn from its file, withheld as pages are when it held a secret) with the
    answer's boxes on it, and the words OCR read on it beside it."""
    mine = tuple(m for m in marks if m.picture.id == str(src.get("id")))
    name = mine[0].picture.citation if mine else view.path + (
        f" p.{part.start}" if part.kind == "page" else "")
    left, right = st.columns([3, 2])
    with left:
        _draw_picture(view, part, mine, name)
        for mark in mine:
            st.caption(md_plain(mark.line()))
    with right:
        st.caption("read on the picture (OCR)")
        words = "\n".join(w.strip() for w in _WORDS.findall(part.text)) or "(no words)"
        st.markdown(marked_text(words, src.get("quote", "")), unsafe_allow_html=True)


def _pdf(view: SourceView, src: dict, marks: list[Grounded] | tuple = ()) -> None:
    """The cited page drawn (secrets boxed, or withheld), with the boxes the answer drew on it
    when the page went to the model as a figure picture."""
    page = int(src["page"])
    mine = tuple(m for m in marks if m.picture.id == str(src.get("id")))
    quote = src.get("quote", "")
    if view.file is not None and view.page_unchecked(page):
        st.caption("picture withheld: the page has no text layer and was not OCRed, so it was "
                   "never checked for secrets")
    elif view.file is not None:
        try:
            png, found = _page_png(str(view.file), view.file.stat().st_mtime_ns, page, quote,
                                   view.page_holds_secret(page))
            st.markdown(inline_png(marked_png(png, mine), f"{view.path}, page {page}"
                                   + (f" ({found} passage marks)" if found else "")),
                        unsafe_allow_html=True)
            for mark in mine:
                st.caption(md_plain(mark.line()))
            return
        except PictureWithheld:
            st.caption(f"{WITHHELD}; its text:")
        except Exception as exc:  # noqa: BLE001 - a damaged or odd PDF: show its text instead
            st.caption(f"the page cannot be drawn ({md_plain(exc)}); its text:")
    part = view.page(page)
    st.markdown(marked_text(part.text if part else "", quote), unsafe_allow_html=True)


def _part(view: SourceView, src: dict) -> None:
    """The cited part (a slide, a sheet range, a section, a mail's body) with the passage
    marked, under its name; a part gone from the stored source shows the quote alone."""
    part = view.part(str(src["part"]))
    st.caption(f"{view.path} › {src['part']}")
    quote = src.get("quote", "")
    st.markdown(marked_text(part.text if part else quote, quote), unsafe_allow_html=True)


def _code(view: SourceView, src: dict) -> None:
    lines = view.lines()
    a, _, b = str(src.get("lines") or "1-1").partition("-")
    first, last = int(a or 1), int(b or a or 1)
    st.markdown(code_excerpt_html(lines, first, last), unsafe_allow_html=True)


def _video(view: SourceView, src: dict) -> None:
    if view.file is not None:
        try:
            h, m, sec = (int(float(x)) for x in str(src["t"]).split(":"))
            if view.frame_holds_secret(h * 3600 + m * 60 + sec):
                raise PictureWithheld("picture withheld: the frame shows a redacted secret")
            png = _frame_png(str(view.file), view.file.stat().st_mtime_ns,
                             h * 3600 + m * 60 + sec)
            st.markdown(inline_png(png, f"{view.path} @ {src['t']}"), unsafe_allow_html=True)
        except PictureWithheld as exc:
            st.caption(str(exc))
        except Exception as exc:  # noqa: BLE001 - a damaged video: the text still shows
            st.caption(f"the frame cannot be shown ({md_plain(exc)})")
    st.markdown(marked_text(src.get("quote", ""), src.get("quote", "")), unsafe_allow_html=True)


def show_sources(corpus: str, sources: list[dict], answer: str = "") -> None:
    """Each source in an expander; `answer`: the boxes and points it writes over pictures are
    drawn on them."""
    if not sources:
        st.caption("No sources: the answer cites nothing and matches no passage.")
        return
    marks = answer_marks(corpus, answer, sources, who=who())
    for i, src in enumerate(sources):
        with st.expander(_label(src), expanded=i == 0):
            st.caption(_badge(src))
            try:
                view = source_view(corpus, src["path"], who=who())
            except (CorpusNotFound, KeyError):
                st.caption("this source is no longer in the corpus; the quoted text:")
                st.code(src.get("quote", ""), language=None)
                continue
            picture = view.picture_part(src) if view.kind == "image" else None
            if picture is not None:
                _picture(view, picture, src, marks)
            elif src.get("part"):
                _part(view, src)
            elif src.get("page") is not None:
                _pdf(view, src, marks)
            elif src.get("t"):
                _video(view, src)
            elif src.get("lines"):
                _code(view, src)
            else:
                st.markdown(marked_text(src.get("quote", ""), src.get("quote", "")),
                            unsafe_allow_html=True)
