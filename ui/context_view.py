"""What went into an answer's context: the mode, the request's tokens against the window, each
source with its span, tokens and the retrieval signals that found it, as a table and a picture
of the budget (a treemap of the window), and each picture with how it went (as a picture or as
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
        _pictures(context.get("pictures") or [])
        budget = context.get("budget") or sum(r["tokens"] for r in rows) or 1
        st.plotly_chart(window_treemap([(f"{r['source']} [{r['id']}]", r["tokens"]) for r in rows],
                                       budget, "the context budget"), key=f"ctx-{key}")


def _how(item: dict) -> str:
    return str(next((item[k] for k in ("went", "as", "sent_as", "how") if k in item), ""))


def _pictures(pictures: list) -> None:
    """The pictures the context held, one row each, as Context.to_json lists them (which went
    as pictures, which as their words and why, their image tokens)."""
    rows = [p for p in pictures if isinstance(p, dict)]
    if not rows:
        return
    went: dict[str, int] = {}
    for p in rows:
        went[_how(p) or "listed"] = went.get(_how(p) or "listed", 0) + 1
    st.caption(f"**{len(rows)} pictures**: " + ", ".join(f"{n} {md_plain(how)}"
                                                          for how, n in went.items()))
    st.dataframe([{k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                   for k, v in p.items()} for p in rows], hide_index=True,
                 use_container_width=True)
