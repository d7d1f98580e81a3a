"""The sources of an answer, each shown so it can be checked: code lines highlighted in their
file, a PDF page drawn with the passage marked, a video moment, a part of an Office file, web
page, mail or e-book (its slide, sheet range, section or mail named), or the matched text."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.services.corpora import CorpusNotFound
from app.services.viewing import SourceView, source_view
from ui.auth import who
from ui.render import (
    WITHHELD,
    PictureWithheld,
    code_excerpt_html,
    inline_png,
    marked_text,
    md_plain,
    pdf_page_png,
    video_frame_png,
)


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


def _pdf(view: SourceView, src: dict) -> None:
    page = int(src["page"])
    quote = src.get("quote", "")
    if view.file is not None and view.page_unchecked(page):
        st.caption("picture withheld: the page has no text layer and was not OCRed, so it was "
                   "never checked for secrets")
    elif view.file is not None:
        try:
            png, marks = _page_png(str(view.file), view.file.stat().st_mtime_ns, page, quote,
                                   view.page_holds_secret(page))
            st.markdown(inline_png(png, f"{view.path}, page {page}"
                                   + (f" ({marks} passage marks)" if marks else "")),
                        unsafe_allow_html=True)
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


def show_sources(corpus: str, sources: list[dict]) -> None:
    if not sources:
        st.caption("No sources: the answer cites nothing and matches no passage.")
        return
    for i, src in enumerate(sources):
        with st.expander(_label(src), expanded=i == 0):
            st.caption(_badge(src))
            try:
                view = source_view(corpus, src["path"], who=who())
            except (CorpusNotFound, KeyError):
                st.caption("this source is no longer in the corpus; the quoted text:")
                st.code(src.get("quote", ""), language=None)
                continue
            if src.get("part"):
                _part(view, src)
            elif src.get("page") is not None:
                _pdf(view, src)
            elif src.get("t"):
                _video(view, src)
            elif src.get("lines"):
                _code(view, src)
            else:
                st.markdown(marked_text(src.get("quote", ""), src.get("quote", "")),
                            unsafe_allow_html=True)
