"""What went into an answer's context: the mode, the request's tokens against the window, each
source with its span, tokens and the retrieval signals that found it, as a table and a picture
of the budget (a treemap of the window); retrieval's doubt and the places it left out; and each
picture with how it went (as a picture or as
its text) and what it cost."""

from __future__ import annotations

import streamlit as st

from ui.render import md_plain, window_treemap


def show_context(context: dict | None, key: str) -> None:
    if not context:
        return
    sources = context.get("sources") or []
    found: dict[str, str] = {}
    for h in context.get("hits") or []:
        found.setdefault(h["path"], ", ".join(sorted(h.get("signals") or {})))
    images = (f", {context['image_tokens']:,} of them for {context['images']} images"
              if context.get("images") else "")
    with st.expander(f"What went in: {len(sources)} sources, "
                     f"{context.get('prompt_tokens', 0):,} prompt tokens{images}"):
        st.caption(f"mode **{context.get('mode')}** · corpus {context.get('corpus_tokens', 0):,} "
                   f"tokens · budget {context.get('budget', 0):,} model tokens"
                   + ("" if context.get("exact", True) else
                      " · counts are an estimate (the server cannot tokenize)"))
        rows = [{"id": s.get("id"), "source": s.get("path"),
                 "where": next((f"{k} {s[k]}" for k in ("lines", "page", "t") if k in s), ""),
                 "tokens": s.get("tokens", 0), "found by": found.get(s.get("path", ""), "")}
                for s in sources]
        st.dataframe(rows, hide_index=True, use_container_width=True)
        _doubt(context)
        _pictures(context.get("pictures") or [])
        budget = context.get("budget") or sum(r["tokens"] for r in rows) or 1
        st.plotly_chart(window_treemap([(f"{r['source']} [{r['id']}]", r["tokens"]) for r in rows],
                                       budget, "the context budget"), key=f"ctx-{key}")


def _doubt(context: dict) -> None:
    """Retrieval's doubt (the answer may not be in what was read), the names the question was
    scoped by, and the best places left out."""
    if context.get("unsure"):  # it names paths: a document's words, shown as written
        st.warning(md_plain(context["unsure"]))
    if context.get("scope"):
        st.caption("ranked inside what the question names too: "
                   + ", ".join(md_plain(n) for n in context["scope"]))
    left = [h for h in context.get("runner_ups") or [] if isinstance(h, dict)]
    if left:
        st.caption("**runner-ups** (ranked next, left out of the window)")
        st.dataframe([{"source": h.get("path"), "where": h.get("where", ""),
                       "found by": ", ".join(sorted(h.get("signals") or {}))} for h in left],
                     hide_index=True, use_container_width=True)


def _pictures(pictures: list) -> None:
    """The pictures the context held (Context.to_json's `pictures`), one row each: which went
    as pictures and which as their words, why, and what each cost."""
    rows = [p for p in pictures if isinstance(p, dict)]
    if not rows:
        return
    sent = sum(p.get("sent") == "picture" for p in rows)
    st.caption(f"**{len(rows)} pictures**: {sent} sent as pictures, {len(rows) - sent} as "
               "their text")
    st.dataframe([{"id": p.get("source"), "picture": p.get("label") or p.get("path"),
                   "size": p.get("size") or "", "went as": p.get("sent", ""),
                   "tiles": p.get("tiles") or "", "tokens": p.get("tokens", 0),
                   "why": p.get("why", "")} for p in rows],
                 hide_index=True, use_container_width=True)
