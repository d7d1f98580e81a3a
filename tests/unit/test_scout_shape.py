"""benchmarks/gpu/scout_shape.py (issue 29, item 3) cannot rot: `--tiny` runs on the CPU as the
GPU machine would run it (torch, numpy, safetensors and the planner's three standard-library
modules, nothing else of the project's dependencies), writes its JSON, and the model it
measures is Llama 4: the same logits as transformers' Llama4ForCausalLM on the same weights, at
any prefill step, warm or cold, before and after a restart from disk."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu" / "scout_shape.py"

#: the GPU machine has torch, numpy and safetensors (and what they require) beside the
#: repository: the script runs with `python -S` over a folder that links only those from this
#: venv's site-packages, so any other third-party import is not found, as it would not be there
GUARD = r"""
import runpy, sys
sys.path.insert(0, sys.argv[1])
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_machine_site(folder: Path) -> Path:
    """A site folder holding what the GPU machine's Python has: torch, numpy, safetensors and
    the distributions they require (not their extras), linked from this venv."""
    seen, todo = set(), ["torch", "numpy", "safetensors"]
    while todo:
        name = todo.pop()
        if _norm(name) in seen:
            continue
        seen.add(_norm(name))
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r]
    site = Path(torch.__file__).resolve().parents[1]
    folder.mkdir(parents=True)
    tops = {top for top, dists in metadata.packages_distributions().items()
            if any(_norm(d) in seen for d in dists)}
    for item in site.iterdir():
        top = item.name.split(".")[0]
        info = item.suffix == ".dist-info" and _norm(item.name.split("-")[0]) in seen
        if (top in tops or info) and item.name != "__pycache__":
            (folder / item.name).symlink_to(item)
    return folder


def guarded(tmp_path: Path, *argv: str, timeout: int) -> subprocess.CompletedProcess:
    site = gpu_machine_site(tmp_path / "gpu-site")
    return subprocess.run([sys.executable, "-S", "-c", GUARD, str(site), *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def load_script():
    spec = importlib.util.spec_from_file_location("scout_shape", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["scout_shape"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_tiny_runs_with_only_what_the_gpu_machine_has_and_writes_its_figures(tmp_path):
    out = tmp_path / "figures.json"
    done = guarded(tmp_path, str(SCRIPT), "--tiny", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    fig = json.loads(out.read_text())
    assert fig["device"] == "cpu" and fig["shape"]["layers"] == 4
    assert fig["parameters"] == fig["planner_parameters"]  # the planner counts this shape exactly
    assert [r["tokens"] for r in fig["prefill"]] == [128, 256, 512, 1024]
    assert all(r["seconds"] > 0 and r["tokens_per_s"] > 0 for r in fig["prefill"])
    kv = fig["kv"]
    assert kv["global_bytes_per_token"] == kv["planner_bytes_per_token"]
    assert kv["local_bytes_fixed"] == kv["planner_local_bytes"]
    assert kv["allocated_vs_planner"] == 1.0
    assert fig["follow_up"]["question_tokens"] == 8 and fig["follow_up"]["warm_ttft_s"] > 0
    tiers = fig["tiers"]
    assert tiers["same_answer_after_restart"] is True and tiers["file_bytes"] >= tiers[
        "prefix_bytes"]
    assert "warm follow-up" in done.stdout and "restart:" in done.stdout


def test_a_blocked_import_really_fails_under_the_guard(tmp_path):
    """The guard is not a no-op: a script importing one of the project's other dependencies,
    or a module of the project that needs one, fails under it."""
    for line, error in (("import pydantic", "No module named 'pydantic'"),
                        ("import transformers", "No module named 'transformers'"),
                        (f"import sys; sys.path.insert(0, {str(REPO)!r}); import app.database",
                         "No module named 'sqlalchemy'")):
        (tmp_path / "bad.py").write_text(line + "\n")
        done = guarded(tmp_path / f"t{len(line)}", str(tmp_path / "bad.py"), timeout=60)
        assert done.returncode != 0 and error in done.stderr, (line, done.stderr[-500:])


@pytest.fixture(scope="module")
def tiny():
    s = load_script()
    weights = s.random_weights(s.TINY, "cpu", torch.float32)
    return s, s.ScoutShape(s.TINY, weights), weights


def _prefill(s, model, tokens, step, capacity=None):
    cache = s.Cache(s.TINY, capacity or tokens.shape[0], "cpu", torch.float32)
    return model.prefill(tokens, cache, step), cache


def test_every_prefill_step_gives_the_same_logits(tiny):
    s, model, _ = tiny
    tokens = torch.randint(0, s.TINY.vocab, (3 * s.TINY.chunk + 7,),
                           generator=torch.Generator().manual_seed(3))
    whole, _ = _prefill(s, model, tokens, s.TINY.chunk)
    for step in (7, 16, 1):
        logits, _ = _prefill(s, model, tokens, step)
        assert float((logits - whole).abs().max()) < 1e-4, step


def test_a_warm_question_equals_a_cold_prefill_of_prefix_and_question(tiny):
    s, model, _ = tiny
    tokens = torch.randint(0, s.TINY.vocab, (2 * s.TINY.chunk + 20,),
                           generator=torch.Generator().manual_seed(4))
    cold, _ = _prefill(s, model, tokens, s.TINY.chunk)
    _, cache = _prefill(s, model, tokens[:-9], s.TINY.chunk, capacity=tokens.shape[0])
    warm = model.prefill(tokens[-9:], cache, s.TINY.chunk)
    assert float((warm - cold).abs().max()) < 1e-4


def test_the_model_is_transformers_llama4_on_the_same_weights(tiny):
    """The hand-written model against the reference implementation (which runs every expert
    on every token and builds dense masks: fine at this size)."""
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    s, model, weights = tiny
    t = s.TINY
    cfg = Llama4TextConfig(
        vocab_size=t.vocab, hidden_size=t.hidden, intermediate_size=t.inter,
        intermediate_size_mlp=t.inter, num_hidden_layers=t.layers, num_attention_heads=t.heads,
        num_key_value_heads=t.kv_heads, head_dim=t.head_dim, num_local_experts=t.experts,
        num_experts_per_tok=1, interleave_moe_layer_step=1, max_position_embeddings=4096,
        attention_chunk_size=t.chunk, floor_scale=t.floor_scale, attn_temperature_tuning=True,
        attn_scale=t.attn_scale, no_rope_layer_interval=4, use_qk_norm=True,
        rms_norm_eps=t.eps, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": t.rope_theta,
                         "factor": t.rope_factor, "low_freq_factor": t.low_freq,
                         "high_freq_factor": t.high_freq,
                         "original_max_position_embeddings": t.original_max})
    cfg._attn_implementation = "sdpa"
    reference = Llama4ForCausalLM(cfg).eval()
    missing, unexpected = reference.load_state_dict(weights, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    tokens = torch.randint(0, t.vocab, (3 * t.chunk + 5,),
                           generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = reference(input_ids=tokens[None]).logits[0, -1].float()
    ours, _ = _prefill(s, model, tokens, 16)
    assert float((ours - expected).abs().max()) < 1e-4
    assert int(ours.argmax()) == int(expected.argmax())
