"""Analyze: a briefing, an extraction into a table, or a comparison over a whole corpus, for an
analyst who first wants to know what is in a document set. It runs on the shared model's turn
with its progress shown, states its coverage before anything else, and is stored: earlier
analyses reopen from the database, and an interrupted one resumes from its finished calls."""

from __future__ import annotations

import logging

import streamlit as st

from app.services.analysis.run import analyze
from app.services.analysis.store import NoSuchAnalysis, Stored, analyses, analysis
from app.services.analysis.types import AnalyzeInput, BadAnalysis, schema_fields
from app.services.catalog import show_corpus
from common.errors import UserError
from ui.analysis_view import show_analysis
from ui.auth import who
from ui.common import corpus_names, pick_corpus, prefs
from ui.render import md_plain
from ui.shared_backend import shared

MAX_SCHEMA_BYTES = 256 * 1024
KINDS = {"brief": "Briefing: themes, key facts, open questions, a guide to each source",
         "extract": "Extract: one row per source, the fields you name, each cell cited",
         "compare": "Compare: two sources, or this corpus against another version of it"}
OPEN = "analysis_open"  # the id of the analysis shown below the form

st.header("Analyze")
corpus = pick_corpus()
if corpus is None:
    st.stop()


def schema_fields_of(data: bytes) -> tuple[str, ...]:
    """The fields of an uploaded JSON schema (or JSON list of names); one line on a bad one."""
    if len(data) > MAX_SCHEMA_BYTES:
        raise BadAnalysis(f"the schema is over {MAX_SCHEMA_BYTES:,} bytes")
    try:
        return schema_fields(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadAnalysis("the schema is not JSON (not UTF-8 text)") from None


def _request() -> AnalyzeInput | None:
    """The form: what to analyse; None until it is complete."""
    kind = st.radio("Analysis", list(KINDS), format_func=KINDS.get, key="analyze_kind")
    max_tokens = st.number_input("Answer tokens per model call", 64, 8192, 512, step=64,
                                 key="analyze_max_tokens")
    fields: tuple[str, ...] = ()
    left = right = other = None
    if kind == "extract":
        typed = st.text_input("Fields (comma-separated)", key="analyze_fields",
                              placeholder="party, start date, amount")
        schema = st.file_uploader("…or a JSON schema", type=["json"], key="analyze_schema")
        if schema is not None:
            fields = schema_fields_of(schema.getvalue())
        else:
            fields = tuple(f.strip() for f in typed.split(",") if f.strip())
    elif kind == "compare":
        how = st.radio("Compare", ["two sources of this corpus", "this corpus with another"],
                       horizontal=True, key="analyze_compare")
        if how == "two sources of this corpus":
            paths = [f.path for f in show_corpus(corpus, who=who())[1] if f.status == "ok"]
            a, b = st.columns(2)
            left = a.selectbox("Before", paths, key="analyze_left")
            right = b.selectbox("After", paths, index=min(1, len(paths) - 1) if paths else 0,
                                key="analyze_right")
        else:
            others = [n for n in corpus_names() if n != corpus]
            if not others:
                st.info("No other corpus you may read to compare with.")
                return None
            other = st.selectbox("The other corpus (the newer version)", others,
                                 key="analyze_other")
    return AnalyzeInput(corpus, kind, fields, left, right, other, int(max_tokens))


def _run(asked: AnalyzeInput, resume: str | None = None) -> None:
    """The analysis on the shared model's turn, its progress in a status box; stored either
    way (done, or interrupted and resumable)."""
    with st.status("Analysing…" if resume is None else f"Resuming {resume}…",
                   expanded=True) as status:
        bar = st.progress(0.0, text="reading the corpus")

        def progress(stage: str, done: int, total: int, detail: str) -> None:
            bar.progress(done / total if total else 0.0,
                         text=f"{md_plain(stage)}: {done:,} of {total:,} {md_plain(detail)}")

        def busy() -> None:
            status.update(label="The model is answering another question or running an "
                                "eval; this analysis is next.")

        try:
            model = shared(prefs())
            with model.turn(busy) as backend:
                result = analyze(asked, backend, who=who(), progress=progress, resume=resume)
        except UserError as exc:
            status.update(label="Stopped", state="error")
            st.error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a server gone, the database busy
            logging.getLogger("scoutlens.ui").exception("analyze failed")
            status.update(label="Interrupted", state="error")
            st.error(f"the analysis stopped ({type(exc).__name__}); the calls it finished are "
                     "kept: resume it from the list below")
            return
        status.update(label=f"Done: {result.coverage.read:,} of {result.coverage.sources:,} "
                            f"sources read in {result.calls:,} model calls", state="complete",
                      expanded=False)
    st.session_state[OPEN] = result.analysis_id


try:
    asked = _request()
except BadAnalysis as exc:
    st.error(str(exc))
    asked = None
if st.button("Analyze", type="primary", disabled=asked is None):
    assert asked is not None
    _run(asked)
st.caption("Every source is read (in parts when the corpus does not fit the model's window). "
           "Stop (top right) cancels a run; the calls it finished are kept and it resumes from "
           "the list below.")

mine = analyses(corpus=corpus, who=who())
stopped = any(a.status == "interrupted" for a in mine)
with st.expander(f"Earlier analyses of {corpus} ({len(mine)})", expanded=stopped):
    if not mine:
        st.caption("None yet.")
    else:
        st.dataframe([{"id": a.analysis_id, "when": a.created_at, "kind": a.kind,
                       "status": a.status, "coverage": (a.result or {}).get("coverage")}
                      for a in mine], width="stretch", hide_index=True)
        by_id: dict[str, Stored] = {a.analysis_id: a for a in mine}
        pick = st.selectbox("Analysis", list(by_id), key="analyze_pick",
                            format_func=lambda i: f"{i} · {by_id[i].kind} · {by_id[i].status} "
                                                  f"· {by_id[i].created_at}")
        chosen = by_id[pick]
        if chosen.status == "done" and st.button("Open", key="analyze_open"):
            st.session_state[OPEN] = chosen.analysis_id
        if chosen.status in ("interrupted", "running"):
            # "running" may be one a stopped server left behind: resuming it takes its
            # finished calls (one still running elsewhere gains nothing, and loses nothing)
            st.caption(f"Interrupted: {md_plain(chosen.error or 'no reason given')}"
                       if chosen.status == "interrupted" else
                       "Running, or left running by a server that stopped: resume takes the "
                       "calls it finished")
            if st.button("Resume", key="analyze_resume"):
                try:
                    _run(AnalyzeInput.of(chosen.request), resume=chosen.analysis_id)
                except BadAnalysis as exc:
                    st.error(str(exc))

shown = st.session_state.get(OPEN)
if shown:
    try:
        stored = analysis(shown, who=who())
    except NoSuchAnalysis:  # removed, or another person's: nothing to show
        st.session_state.pop(OPEN, None)
    else:
        if stored.result is not None and stored.corpus == corpus:
            st.divider()
            show_analysis(stored.result)
