"""Corpora: the table of the corpora one may read (what kinds of documents each holds), create
one, add files (uploads or a local folder) with live progress, read the
ingest report, see how the corpus fills the model's window, delete."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import streamlit as st

from app.services.access import can_change
from app.services.catalog import list_corpora, remove_corpus, share_corpus, show_corpus
from app.services.ingesting import check_name, ingest
from app.services.viewing import document_kinds
from common.errors import UserError
from ingest.types import IngestError
from ui import jobs, uploads
from ui.analysis_view import show_latest_guide
from ui.auth import who
from ui.common import corpus_names, job_outcome, job_progress, prefs, shared_server
from ui.render import window_treemap

SCOUT_WINDOW = 10_000_000

st.header("Corpora")
settings = prefs()
names = corpus_names()
NEW = "+ new corpus"


def _kinds_text(kinds: dict[str, int]) -> str:
    """"word 3 · sheet 2 · mail 5": what a corpus holds, most first."""
    return " · ".join(f"{kind} {n:,}" for kind, n in kinds.items()) or "(empty)"


if names:  # the page opens on what the analyst has, not on an empty form
    kinds = document_kinds(who=who())
    st.dataframe([{"corpus": c.name, "documents": _kinds_text(kinds.get(c.name, {})),
                   "sources": c.sources, "tokens": c.tokens, "owner": c.owner,
                   "updated": c.updated_at} for c in list_corpora(who=who())],
                 width="stretch", hide_index=True)
current = st.session_state.get("active_corpus")
choice = st.selectbox("Corpus", [NEW, *names],
                      index=names.index(current) + 1 if current in names else 0)
if choice == NEW:
    corpus = st.text_input("Name of the new corpus", placeholder="e.g. annual-reports",
                           key="new_corpus_name").strip()
else:
    corpus = choice
    st.session_state["active_corpus"] = corpus


def _start_ingest(name: str, inputs: list[Path], prune: bool, on_fail=None) -> None:
    person = who()  # the job's thread has no page session

    def work(job: jobs.Job):
        try:
            return ingest(inputs, name, prune=prune, progress=job.progress, who=person)
        except BaseException:
            if on_fail:
                on_fail()
            raise

    st.session_state["ingest_job"] = jobs.start("ingest", f"ingest into {name}", work)
    st.session_state["active_corpus"] = name


add_files, add_folder = st.tabs(["Upload files", "Local folder or repository"])
with add_files:
    nonce = st.session_state.get("upload_nonce", 0)
    files = st.file_uploader(
        "PDFs, Word (.docx), PowerPoint (.pptx), spreadsheets (.xlsx, .ods, .csv), web pages "
        "(.html, .mhtml), mail (.eml, .mbox, Outlook .msg), e-books (.epub), OpenDocument and "
        "RTF, pictures (.png, .jpg, .webp, .gif, .bmp, .tif/.tiff scans), code, text, "
        "notebooks, videos, or zip/tar archives of repositories",
        accept_multiple_files=True, key=f"uploader-{nonce}",
        max_upload_size=settings.upload_mb)  # the browser refuses a larger file unsent
    st.caption(f"Upload limit: {settings.upload_mb:,} MB per file (Settings).")
    if st.button("Ingest uploaded files", type="primary", disabled=not files):
        try:
            name = check_name(corpus)
            paths, refused = uploads.save_batch(name, list(files or []), settings.upload_mb)
            st.session_state["upload_refused"] = [f"{r.name}: {r.reason}" for r in refused]
            if paths:
                _start_ingest(name, paths, prune=False,
                              on_fail=lambda p=paths: uploads.discard(p))
                st.session_state["upload_nonce"] = nonce + 1
                st.rerun()
        except IngestError as exc:
            st.error(str(exc))
    for message in st.session_state.get("upload_refused", []):
        st.error(message)
with add_folder:
    if shared_server():
        st.info("Ingesting folders of the server is off on a shared server (start it with "
                "`scoutlens ui --trusted` to allow it); upload files or a zip instead.")
    folder = st.text_input("Path on this machine", placeholder="~/src/myrepo",
                           disabled=shared_server())
    st.caption("A git repository is read through git (ignored files stay out); any folder or "
               "archive works. Files removed from the folder leave the corpus.")
    if st.button("Ingest folder", type="primary", disabled=not folder or shared_server()):
        try:
            _start_ingest(check_name(corpus), [uploads.check_local_path(folder)], prune=True)
            st.rerun()
        except IngestError as exc:
            st.error(str(exc))

job = st.session_state.get("ingest_job")
if job is not None:
    job_progress(job)
    if job_outcome(job) and job.result is not None:
        r = job.result
        st.success(f"{job.label}: {r.count('added')} added, {r.count('changed')} changed, "
                   f"{r.count('unchanged')} unchanged, {r.count('removed')} removed, "
                   f"{r.count('skipped') + r.count('error')} skipped; "
                   f"{r.total_tokens:,} tokens in {r.seconds:.1f} s")
        for note in r.notes:
            st.caption(note)

if corpus and corpus in corpus_names():
    summary, files = show_corpus(corpus, who=who())
    st.subheader(corpus)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Sources", f"{summary.sources:,}")
    c2.metric("Tokens", f"{summary.tokens:,}")
    c3.metric("Skipped", f"{summary.skipped:,}")
    c4.metric("Tokenizer", summary.tokenizer)

    st.markdown("**How the corpus fills the window**")
    which = st.radio("Window", ["model in use", "Llama 4 Scout (10M)"], horizontal=True,
                     label_visibility="collapsed")
    window = SCOUT_WINDOW
    if which == "model in use":
        try:
            from ui.shared_backend import shared

            window = shared(settings).backend.window or SCOUT_WINDOW
        except Exception as exc:  # noqa: BLE001 - the picture still draws against Scout
            st.warning(f"the model's window is unknown ({exc}); showing Scout's")
    ok = [(f.path, f.tokens) for f in files if f.status == "ok"]
    st.plotly_chart(window_treemap(ok, window), width="stretch")
    if summary.tokens > window:
        st.info(f"The corpus is {summary.tokens / window:.1f}x this window: questions use "
                "retrieval (the passages that match best) instead of the whole corpus.")

    skipped = [f for f in files if f.status != "ok"]
    flagged = [(f.path, fl.removeprefix("injection:")) for f in files for fl in f.flags
               if fl.startswith("injection:")]
    with st.expander(f"Skipped files and why ({len(skipped)})", expanded=bool(skipped)):
        if skipped:
            reasons = Counter(f.reason.split(":")[0] for f in skipped)
            st.caption(" · ".join(f"{r}: {n}" for r, n in reasons.most_common()))
            st.dataframe([{"file": f.path, "status": f.status, "why": f.reason}
                          for f in skipped], width="stretch", hide_index=True)
        else:
            st.write("Nothing was skipped.")
    with st.expander(f"Flagged passages ({len(flagged)})", expanded=bool(flagged)):
        st.caption("Text that reads like instructions to a model (prompt injection). It stays "
                   "in the corpus as data and answers list it; it is never obeyed.")
        if flagged:
            st.dataframe([{"file": p, "passage": t} for p, t in flagged],
                         width="stretch", hide_index=True)
    with st.expander(f"All sources ({summary.sources})"):
        st.dataframe([{"file": f.path, "tokens": f.tokens, "bytes": f.bytes}
                      for f in files if f.status == "ok"], width="stretch",
                     hide_index=True)
    show_latest_guide(corpus, who())  # the newest briefing's guide (the Analyze page)

    if not can_change(who(), summary.owner):  # shared with this person: theirs to read only
        st.caption(f"Shared with you by {summary.owner}: only they or an admin may change or "
                   "delete it.")
    else:
        with st.expander(f"Sharing: {summary.shared}"):
            choices = {"private": "Only me (and admins)", "groups": "Members of groups",
                       "everyone": "Everyone signed in"}
            pick = st.radio("Who may read it", list(choices), format_func=choices.get,
                            index=list(choices).index(summary.visibility), key="share_mode")
            named = st.text_input("Groups (comma-separated)", ", ".join(summary.groups),
                                  disabled=pick != "groups", key="share_groups")
            if st.button("Save sharing"):
                try:
                    shared = share_corpus(corpus, pick, named.split(","), who=who())
                except UserError as exc:
                    st.error(str(exc))
                else:
                    st.toast(f"{shared.name}: shared with {shared.shared}")
                    st.rerun()
        with st.expander("Delete this corpus"):
            sure = st.checkbox(f"Yes, delete {corpus} and its stored sources", key="confirm_delete")
            if st.button("Delete", disabled=not sure):
                try:
                    removed = remove_corpus(corpus, who=who())
                except UserError as exc:  # deleted meanwhile in another session, or not theirs
                    st.error(str(exc))
                    st.stop()
                uploads.remove_corpus_files(corpus)
                st.session_state.pop("active_corpus", None)
                st.session_state.pop("ingest_job", None)
                st.toast(f"deleted {removed.name} ({removed.sources} sources)")
                st.rerun()
