"""Ask: chat over a corpus with the answer streamed, the mode and KV-cache hit of each answer,
and every source shown so it can be checked. Past questions come from the database, so a
reload loses nothing that was answered."""

from __future__ import annotations

import logging

import streamlit as st

from app.services.ask import AskInput, ask
from app.services.history import history
from common.errors import UserError
from ui.auth import who
from ui.common import hide_path, pick_corpus, prefs
from ui.context_view import show_context
from ui.render import safe_answer, safe_text
from ui.shared_backend import shared
from ui.sources_panel import show_sources

st.header("Ask")
corpus = pick_corpus()
if corpus is None:
    st.stop()

settings = prefs()
left, right = st.columns([3, 1])
mode = right.radio("Context", ["auto", "full", "retrieval"], horizontal=False,
                   help="full: the whole corpus (its KV cache is reused from one question to the "
                        "next); retrieval: the passages that match best; auto: full if it fits")
# A conversation belongs to the browser session that started it; its id is kept in the URL, so
# a reload carries on with it and another user never sees it in their chat.
key = f"conversation-{corpus}"
if right.button("New conversation"):
    st.session_state.pop(key, None)
    st.query_params.pop("conversation", None)
    st.rerun()
conversation = st.session_state.get(key) or st.query_params.get("conversation")
rows = history(corpus, limit=200, who=who())
turns = sorted((r for r in rows if conversation and r.conversation == conversation),
               key=lambda r: r.turn)


def _meta(mode_used: str, usage: dict, timings: dict, backend: str, model: str) -> str:
    prompt, cached = usage.get("prompt_tokens") or 0, usage.get("cached_tokens") or 0
    hit = f"{cached / prompt:.0%}" if prompt else "n/a"
    return (f"mode **{mode_used}** · KV cache hit **{hit}** ({cached:,} of {prompt:,} prompt "
            f"tokens) · first token {timings.get('ttft_s', 0):.2f} s · "
            f"{timings.get('total_s', 0):.1f} s · {backend}/{hide_path(model, who())}")


with left:
    for r in turns:
        with st.chat_message("user"):
            st.markdown(safe_text(r.question))
        with st.chat_message("assistant"):
            st.markdown(safe_answer(r.answer))
            st.caption(_meta(r.mode, r.usage, r.timings, r.backend, r.model))
            show_sources(corpus, r.sources, r.answer)
            show_context(r.context, f"q{r.id}")

question = st.chat_input(f"Ask about {corpus}")
if question:
    with left:
        with st.chat_message("user"):
            st.markdown(safe_text(question))
        with st.chat_message("assistant"):
            box = st.empty()
            streamed: list[str] = []

            def on_delta(delta: str) -> None:
                streamed.append(delta)
                box.markdown(safe_answer("".join(streamed)) + " ▌")

            try:
                model = shared(settings)

                def busy() -> None:
                    box.info("The model is answering another question or running an eval; "
                             "yours is next.")

                asked = AskInput(corpus, question, mode, conversation=conversation,
                                 corpus_only=True)
                with st.spinner("reading the corpus…"), model.turn(busy) as backend:
                    result = ask(asked, backend, who=who(), on_delta=on_delta)
            except UserError as exc:
                box.empty()
                st.error(str(exc))
                st.stop()
            except Exception as exc:  # noqa: BLE001 - e.g. the database busy past its timeout
                logging.getLogger("scoutlens.ui").exception("ask failed")
                box.empty()
                st.error(f"the question could not be answered ({type(exc).__name__}); "
                         "nothing was stored, ask again")
                st.stop()
            st.session_state[key] = result.conversation
            st.query_params["conversation"] = result.conversation
            box.markdown(safe_answer(result.answer))
            data = result.to_json()
            st.caption(_meta(result.mode, data["usage"], data["timings"], result.completion.backend,
                             result.completion.model))
            if result.mode == "retrieval":
                st.caption(f"retrieval used {result.share:.1%} of the corpus "
                           f"({result.in_context_tokens:,} of {result.corpus_tokens:,} tokens)")
            if result.injections:
                st.warning("Passages in the context read like instructions to the model "
                           "(ignored as instructions): "
                           + safe_text("; ".join(result.injections[:5])))
            show_sources(corpus, data["sources"], result.answer)
            show_context(result.context, "new")

with st.expander(f"Past questions about {corpus} ({len(rows)})"):
    for r in rows:
        st.markdown(f"**{safe_text(r.question)}**  \n{safe_answer(r.answer[:400])}")
        st.caption(f"{r.created_at} · turn {r.turn} of conversation {r.conversation} · {r.mode}")
