"""Evals: start a NIAH or RULER-style run against the backend in use, watch it, read its heatmap
and report, compare two runs. Runs live in the database, so a reload shows them all."""

from __future__ import annotations

import streamlit as st

from app.services import eval_runs
from app.services.access import manages_server
from common.errors import UserError
from engine.types import EngineError
from evals import ruler
from evals.report import (
    compare,
    compare_html,
    curve_png,
    effective_length,
    grid_png,
    heatmap_png,
    html_report,
)
from evals.runner import EvalConfig
from evals.suite import resolve
from evals.tasks import ALL_TASKS, PUBLISHED_TASKS
from ui import jobs
from ui.auth import who
from ui.common import corpus_names, hide_path, job_outcome, job_progress, prefs
from ui.render import download_link, inline_png
from ui.shared_backend import TakingTurns, shared

st.header("Evals")
settings = prefs()
run_tab, report_tab, compare_tab = st.tabs(["New run", "Report", "Compare"])


def _config(tasks: list[str], lengths: str, depths: str, samples: int,
            haystack: str) -> EvalConfig:
    """The form read the way a suite file is (same parsing, same one-line errors)."""
    if not tasks:
        raise EngineError("choose at least one task")

    def items(text: str) -> list[str]:
        return [x.strip() for x in text.split(",") if x.strip()]

    config, _ = resolve(None, {"tasks": tasks, "lengths": items(lengths),
                               "depths": items(depths), "samples": samples,
                               "haystack": haystack})
    return config


with run_tab:
    with st.form("eval_form"):
        # a published suite, or a RULER task whose haystack RULER downloads, reads a local copy
        # of its files: the command line's --data
        tasks = st.multiselect("Tasks", [t for t in ALL_TASKS if t not in PUBLISHED_TASKS
                                         and not ruler.needs(t.removeprefix("ruler-"))],
                               default=["niah"],
                               help="niah and RULER-style families on generated text; "
                                    "ruler-* are RULER's own tasks as RULER makes them; code, "
                                    "pdf and video plant a needle in a file, page or frame of "
                                    "a corpus")
        lengths = st.text_input("Lengths (tokens)", "1k,2k")
        depths = st.text_input("Needle depths (%)", "0,50,100")
        c1, c2 = st.columns(2)
        samples = c1.number_input("Samples per cell", 1, 20, 1)
        haystack = c2.selectbox("Haystack", ["prose", "filler",
                                             *[f"corpus:{n}" for n in corpus_names()]],
                                help="generated prose, RULER's filler, or one of your corpora")
        target = ("the embedded model" if settings.backend != "openai" else
                  f"endpoint {settings.endpoint}" if manages_server(who()) else "the endpoint")
        submitted = st.form_submit_button(f"Start run against {target}", type="primary")
    if submitted:
        try:
            config = _config(tasks, lengths, depths, int(samples), haystack)
            model = shared(settings)
            person = who()  # the job's thread has no page session

            def work(job: jobs.Job) -> str:
                job.progress("preparing", 0, 0, "building the haystack")
                gen, counted = eval_runs.generator_for(config, model.backend, who=person)
                return eval_runs.run(counted, TakingTurns(model), gen, progress=job.count,
                                     who=person)

            st.session_state["eval_job"] = jobs.start("eval", "eval run", work)
        except UserError as exc:
            st.error(str(exc))
    job = st.session_state.get("eval_job")
    if job is not None:
        job_progress(job)
        if job_outcome(job):
            st.success(f"run {job.result} finished: see Report")
            st.session_state["report_run"] = job.result

runs = eval_runs.list_runs(who=who())
labels = {r.run_id: f"{r.run_id} · {r.created_at} · {r.status} · "
                    f"mean {r.mean:.3f}" if r.mean is not None else f"{r.run_id} · {r.status}"
          for r in runs}

with report_tab:
    if not runs:
        st.info("No eval runs yet.")
    else:
        ids = [r.run_id for r in runs]
        wanted = st.session_state.get("report_run")
        run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0,
                              format_func=labels.get)
        s = eval_runs.summary(run_id, who=who())
        cells = eval_runs.cells_of(run_id, who=who())
        c1, c2, c3 = st.columns(3)
        c1.metric("Mean score", f"{s.mean:.3f}" if s.mean is not None else "-")
        c2.metric("Effective length", f"{effective_length(cells):,}")
        c3.metric("Cells", f"{s.done} done, {s.failed} failed")
        st.caption(f"model {hide_path(str(s.fingerprint.get('model', '?')), who())} · backend "
                   f"{s.fingerprint.get('backend', '?')}")
        scored = [c for c in cells if c.score is not None]
        if scored:
            st.markdown(inline_png(curve_png(scored, f"score vs length ({run_id})"),
                                   f"score vs length ({run_id})"), unsafe_allow_html=True)
        for task in sorted({c.task for c in scored}):
            st.markdown(inline_png(heatmap_png(scored, task, f"{task}: score by depth and "
                                               "length"), f"{task} ({run_id})"),
                        unsafe_allow_html=True)
        st.dataframe([{"task": c.task, "length": c.length, "depth": c.depth,
                       "sample": c.sample, "score": c.score, "status": c.status,
                       "first token s": round(c.ttft_s, 3), "total s": round(c.total_s, 3),
                       "prompt tokens": c.prompt_tokens, "cached tokens": c.cached_tokens}
                      for c in cells], width="stretch", hide_index=True)
        r1, r2 = st.columns([1, 3])
        metric = r1.selectbox("Re-score with", ["each cell's own", "all", "part"])
        if r2.button("Re-score stored responses", help="no model call: the stored answers "
                                                      "are scored again"):
            done = eval_runs.rescore(run_id, None if metric.startswith("each") else metric,
                                     who=who())
            st.success(f"re-scored {done.cells} cells, {done.changed} changed: mean "
                       f"{(done.before or 0):.3f} -> {(done.after or 0):.3f}")
        page = html_report(run_id, s.config, cells)
        st.markdown(download_link(page, f"eval-{run_id}.html", "Download HTML report"),
                    unsafe_allow_html=True)

with compare_tab:
    if len(runs) < 2:
        st.info("Two runs are needed to compare.")
    else:
        ids = [r.run_id for r in runs]
        a = st.selectbox("Baseline (A)", ids, index=1, format_func=labels.get)
        b = st.selectbox("Candidate (B)", ids, index=0, format_func=labels.get)
        points = st.number_input("Regression threshold (points)", 0.0, 100.0, 5.0)
        ca, cb = eval_runs.cells_of(a, who=who()), eval_runs.cells_of(b, who=who())
        result = compare(ca, cb)
        differs = eval_runs.fingerprint_diff(a, b, who=who())
        if differs:
            st.warning("The runs used different endpoints: " + "; ".join(
                f"{k}: {x} vs {y}" for k, (x, y) in differs.items()))
        c1, c2, c3 = st.columns(3)
        c1.metric("Mean change", f"{result.mean_delta * 100:+.1f} points")
        c2.metric("Cells worse / better", f"{result.worse} / {result.better}")
        c3.metric("Sign test p", f"{result.p_value:.3g}")
        for task in sorted({t for t, _, _ in result.deltas}):
            st.markdown(inline_png(grid_png(result.deltas, task, f"{task}: {b} - {a}",
                                            diff=True), f"{task}: change per cell (B - A)"),
                        unsafe_allow_html=True)
        if result.regression(points):
            st.error(f"Significant regression of more than {points} points.")
        else:
            st.success("No significant regression.")
        st.dataframe([{"task": t, "length": n, "depth": d, "B - A": v}
                      for (t, n, d), v in sorted(result.deltas.items())],
                     width="stretch", hide_index=True)
        st.markdown(download_link(compare_html(a, b, result, differs), f"compare-{a}-{b}.html",
                                  "Download comparison (HTML)"), unsafe_allow_html=True)
