"""What went into an answer's context: the mode, the request's tokens against the window, and
each source with its span, tokens and the retrieval signals that found it, as a table and a
picture of the budget (a treemap of the window)."""

from __future__ import annotations

import streamlit as st

from ui.render import window_treemap


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
        budget = context.get("budget") or sum(r["tokens"] for r in rows) or 1
        st.plotly_chart(window_treemap([(f"{r['source']} [{r['id']}]", r["tokens"]) for r in rows],
                                       budget, "the context budget"), key=f"ctx-{key}")
