"""Engine: which backend answers and whether it is healthy, the KV cache on disk and how often
answers reused it, and the capacity planner for Scout on GPUs as a form. The operator and admins
see the server's figures (everyone's answers, the cache folder, the endpoint); anyone else sees
their own answers' cache use and no server path (app.services.access.manages_server)."""

from __future__ import annotations

import streamlit as st

from app.services.access import manages_server
from app.services.viewing import CacheFigures, cache_figures
from engine.planner import parse_context, plan
from engine.types import EngineError
from engine.vllm_flags import launch_for_plan
from ingest.types import IngestError
from ui.auth import who
from ui.common import hide_path, model_label, prefs
from ui.shared_backend import shared

st.header("Engine")
settings = prefs()
person = who()
manager = manages_server(person)


def backend_line() -> None:
    if not manager:
        st.write(f"Backend **{settings.backend}**, model **{model_label(settings, person)}**")
    elif settings.backend == "openai":
        st.write(f"OpenAI-compatible endpoint **{settings.endpoint}**, model "
                 f"**{settings.model or '(the server’s)'}**")
    else:
        st.write(f"Embedded model in this process: **{settings.model or 'bundled default'}**")


def health() -> None:
    """One round trip to the backend; why it failed is for those who run the server."""
    try:
        with st.spinner("contacting the backend…"):
            backend = shared(settings).backend
            window = backend.window
            tok = backend.tokenizer()
            n = tok.count("health check")
        how = "exact" if tok.exact else "an estimate: the server cannot tokenize"
        st.success(f"healthy: model {hide_path(backend.model, person)}, window "
                   f"{f'{window:,}' if window else 'unknown'} tokens, tokenizer answers ({n} "
                   f"tokens for 'health check', {how})")
    except EngineError as exc:
        st.error(f"unhealthy: {exc}" if manager else
                 "unhealthy: the backend does not answer (an admin sees why on this page)")


def server_cache(fig: CacheFigures) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Blocks on disk", f"{fig.kv_blocks:,}")
    c2.metric("Size", f"{fig.kv_bytes / 2**20:,.1f} MiB",
              help=f"budget {fig.kv_budget_bytes / 2**30:,.1f} GiB in {fig.kv_dir}")
    c3.metric("Hit rate of answers", f"{fig.hit_rate:.1%}",
              help="cached prompt tokens / all prompt tokens over every stored answer")
    c4.metric("Answers", f"{fig.answers:,}")
    if fig.models:
        st.dataframe([{"model key": k, "blocks": b, "MiB": round(n / 2**20, 1)}
                      for k, (b, n) in sorted(fig.models.items())], hide_index=True)


def own_cache(fig: CacheFigures) -> None:
    c1, c2 = st.columns(2)
    c1.metric("Your answers", f"{fig.answers:,}")
    c2.metric("Your cache hit rate", f"{fig.hit_rate:.1%}",
              help="cached prompt tokens / all prompt tokens over your stored answers")


st.subheader("Backend")
backend_line()
if st.button("Check health"):
    health()

st.subheader("KV cache")
(server_cache if manager else own_cache)(cache_figures(who=person))

st.subheader("Capacity planner")
with st.form("planner"):
    c1, c2, c3 = st.columns(3)
    model = c1.selectbox("Model", ["scout", "maverick"])
    gpus = c2.text_input("GPUs", "8xH100", help="1xH100, 8xH100, 8xH200, 2x8xH100 (multi-node)")
    context = c3.text_input("Context (tokens)", "1M", help="e.g. 128k, 1M, 10M; empty: the most")
    c4, c5, c6 = st.columns(3)
    weights = c4.selectbox("Weights", ["bf16", "fp8", "int4"])
    kv_dtype = c5.selectbox("KV dtype", ["bf16", "fp8"])
    hybrid = c6.selectbox("Hybrid KV manager", ["auto", "on", "off"])
    go = st.form_submit_button("Plan")
if go:
    try:
        p = plan(model, gpus, weights, kv_dtype, None if hybrid == "auto" else hybrid == "on",
                 parse_context(context) if context.strip() else None)
        ctx = p.context if p.context is not None else p.max_model_len
        (st.success if p.fits else st.error)(
            f"{'fits' if p.fits else 'does not fit'}: {ctx:,} tokens on {p.gpus}"
            + ("" if p.fits else f" ({'; '.join(p.reasons)})"))
        st.table({"figure": [r[0] for r in p.rows()], "value": [r[1] for r in p.rows()]})
        for s in p.suggestions:
            st.write(f"would fit with **{s['change']}**")
        st.code(launch_for_plan(p).serve_command(), language="bash")
    except (EngineError, IngestError, ValueError) as exc:
        st.error(str(exc))
