"""Model shapes for capacity planning: what decides weight bytes, KV bytes and prefill FLOPs.

`ModelArch` holds the text decoder's shape (plus the vision tower's parameter count, because
vLLM loads it too). Parameter counts are derived from the shape, never stored, so a config.json
read from disk and the built-in presets go through the same arithmetic. The presets match
transformers' Llama4TextConfig for the Instruct checkpoints; counting a meta-device
Llama4ForConditionalGeneration built from the same configs gives the same totals to the
parameter (Scout 108,641,793,536; Maverick 401,583,781,376).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.types import EngineError


@dataclass(frozen=True)
class ModelArch:
    """One decoder-only model. Layer i is *global* (full causal attention) when
    (i+1) % global_layer_step == 0 (step 1: every layer, 0: none); the others are *local*:
    chunked (Llama 4: a token sees its own `attention_chunk_size` chunk) or a sliding window.
    Layer i is MoE when num_experts > 0 and (i+1) % moe_layer_step == 0, else a dense MLP."""

    name: str
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dense_intermediate: int
    expert_intermediate: int = 0
    num_experts: int = 0
    experts_per_token: int = 0
    shared_expert: bool = False
    shared_expert_intermediate: int = 0  # 0: same as expert_intermediate
    moe_layer_step: int = 1
    global_layer_step: int = 1
    attention_chunk_size: int | None = None
    sliding_window: int | None = None
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    vision_params: int = 0
    family: str = "llama"  # "llama4": vLLM's Llama 4 flags (images, hybrid-KV switch) apply
    hf_ids: tuple[tuple[str, str], ...] = ()  # (weights dtype, checkpoint id) for presets
    global_layer_ids: tuple[int, ...] | None = None  # explicit, when not a regular pattern
    moe_layer_ids: tuple[int, ...] | None = None

    # --- layer layout ---------------------------------------------------------------------
    @property
    def global_layers(self) -> tuple[int, ...]:
        if self.global_layer_ids is not None:
            return self.global_layer_ids
        if self.global_layer_step <= 0:
            return ()
        return tuple(i for i in range(self.layers) if (i + 1) % self.global_layer_step == 0)

    @property
    def n_global(self) -> int:
        return len(self.global_layers)

    @property
    def n_local(self) -> int:
        return self.layers - self.n_global

    @property
    def local_window(self) -> int | None:
        """Keys a local layer keeps per request: the chunk (Llama 4) or the sliding window."""
        if self.n_local == 0:
            return None
        return self.attention_chunk_size or self.sliding_window

    @property
    def mixed_attention(self) -> bool:
        """Global and local layers side by side: where vLLM's hybrid KV manager matters."""
        return self.n_global > 0 and self.n_local > 0 and self.local_window is not None

    @property
    def moe_layers(self) -> tuple[int, ...]:
        if self.num_experts <= 0:
            return ()
        if self.moe_layer_ids is not None:
            return self.moe_layer_ids
        step = max(1, self.moe_layer_step)
        return tuple(i for i in range(self.layers) if (i + 1) % step == 0)

    @property
    def q_dim(self) -> int:
        return self.q_heads * self.head_dim

    def kv_bytes_per_token_layer(self, dtype_bytes: float) -> float:
        """K and V of one token in one layer, all KV heads."""
        return 2 * self.kv_heads * self.head_dim * dtype_bytes

    # --- parameters -----------------------------------------------------------------------
    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab * self.hidden

    @property
    def attn_params_per_layer(self) -> int:
        kv = self.kv_heads * self.head_dim
        return 2 * self.hidden * self.q_dim + 2 * self.hidden * kv

    def _ffn(self, size: int) -> int:
        return 3 * self.hidden * size  # gate, up, down (SwiGLU)

    @property
    def _shared_size(self) -> int:
        if not self.shared_expert:
            return 0
        return self.shared_expert_intermediate or self.expert_intermediate

    @property
    def _mlp_counts(self) -> tuple[int, int]:
        n_moe = len(self.moe_layers)
        return n_moe, self.layers - n_moe

    @property
    def router_params(self) -> int:
        return self._mlp_counts[0] * self.hidden * self.num_experts

    @property
    def norm_params(self) -> int:
        return (2 * self.layers + 1) * self.hidden

    @property
    def decoder_linear_params(self) -> int:
        """Attention and MLP/expert matrices: what fp8/int4 checkpoints quantize (routers,
        embeddings, lm_head, norms and the vision tower stay in bf16)."""
        n_moe, n_dense = self._mlp_counts
        moe = self.num_experts * self._ffn(self.expert_intermediate) + self._ffn(self._shared_size)
        return (self.layers * self.attn_params_per_layer + n_moe * moe
                + n_dense * self._ffn(self.dense_intermediate))

    @property
    def total_params(self) -> int:
        return (self.embed_params + self.lm_head_params + self.decoder_linear_params
                + self.router_params + self.norm_params + self.vision_params)

    @property
    def matmul_params_per_token(self) -> int:
        """Decoder weights one token multiplies through (routed top-k + shared experts, not
        the embedding lookup nor lm_head): 2x this is the dense FLOPs per prompt token."""
        n_moe, n_dense = self._mlp_counts
        moe = (self.experts_per_token * self._ffn(self.expert_intermediate)
               + self._ffn(self._shared_size) + self.hidden * self.num_experts)
        return (self.layers * self.attn_params_per_layer + n_moe * moe
                + n_dense * self._ffn(self.dense_intermediate))

    @property
    def active_params(self) -> int:
        """Parameters a text token touches, as model cards count them ("17B active")."""
        return (self.embed_params + self.lm_head_params + self.matmul_params_per_token
                + self.norm_params)

    def hf_id(self, weights: str) -> str | None:
        return dict(self.hf_ids).get(weights)


def llama4_vision_params(v: dict[str, Any], text_hidden: int) -> int:
    """Llama 4's vision tower + projector, from its vision_config (transformers' layout)."""
    h = int(v.get("hidden_size", 1408))
    inter = int(v.get("intermediate_size", 5632))
    layers = int(v.get("num_hidden_layers", 34))
    patch = int(v.get("patch_size", 14))
    image = int(v.get("image_size", 336))
    channels = int(v.get("num_channels", 3))
    out_dim = int(v.get("vision_output_dim", 4096))
    proj_in = int(v.get("projector_input_dim", 4096))
    proj_out = int(v.get("projector_output_dim", 4096))
    patches = (image // patch) ** 2 + 1
    layer = 4 * (h * h + h) + 2 * h * inter + inter + h + 4 * h  # attn+bias, MLP+bias, 2 LNs
    adapter = inter * proj_in + proj_out * proj_out  # pixel-shuffle MLP (fc1, fc2)
    return (h + patches * h + channels * patch * patch * h + 4 * h + layers * layer + adapter
            + out_dim * text_hidden)


_VISION = {"hidden_size": 1408, "intermediate_size": 5632, "num_hidden_layers": 34,
           "patch_size": 14, "image_size": 336, "vision_output_dim": 4096}

SCOUT = ModelArch(
    name="Llama-4-Scout-17B-16E-Instruct", layers=48, hidden=5120, q_heads=40, kv_heads=8,
    head_dim=128, vocab=202048, dense_intermediate=16384, expert_intermediate=8192,
    num_experts=16, experts_per_token=1, shared_expert=True, moe_layer_step=1,
    global_layer_step=4, attention_chunk_size=8192, max_position_embeddings=10_485_760,
    vision_params=llama4_vision_params(_VISION, 5120), family="llama4",
    hf_ids=(("bf16", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
            ("fp8", "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic"),
            ("int4", "RedHatAI/Llama-4-Scout-17B-16E-Instruct-quantized.w4a16")))

# Maverick is Scout's shape with 128 experts on every second layer and a 1M window
MAVERICK = replace(
    SCOUT, name="Llama-4-Maverick-17B-128E-Instruct", num_experts=128, moe_layer_step=2,
    max_position_embeddings=1_048_576,
    hf_ids=(("bf16", "meta-llama/Llama-4-Maverick-17B-128E-Instruct"),
            ("fp8", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"),
            ("int4", "RedHatAI/Llama-4-Maverick-17B-128E-Instruct-quantized.w4a16")))

PRESETS: dict[str, ModelArch] = {"scout": SCOUT, "maverick": MAVERICK}


def preset_for_id(model_id: str) -> ModelArch | None:
    """The preset a Hugging Face id names (any org, any quantized variant), else None."""
    low = model_id.lower()
    if "llama-4-scout" in low:
        return SCOUT
    if "llama-4-maverick" in low:
        return MAVERICK
    return None


def load_arch(spec: str) -> ModelArch:
    """"scout" | "maverick" | a local folder holding config.json (or the file itself)."""
    key = spec.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    path = Path(spec).expanduser()
    if not path.exists():
        raise EngineError(f"no such model: {spec!r} (use scout, maverick or a local folder with "
                          "config.json)")
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise EngineError(f"{path} has no config.json: not a Hugging Face model folder")
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"cannot read {file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise EngineError(f"{file} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(cfg, dict):
        raise EngineError(f"{file} is not a model config (expected a JSON object)")
    name = path.name if path.is_dir() else path.parent.name
    return arch_from_config(cfg, name or str(path), source=str(file))


def model_window(folder: str | Path) -> int | None:
    """max_position_embeddings of a local model folder, or None when it cannot be read."""
    try:
        cfg = json.loads((Path(folder).expanduser() / "config.json").read_text(encoding="utf-8"))
        text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
        value = text.get("max_position_embeddings")
        return value if isinstance(value, int) and value > 0 else None
    except (OSError, ValueError, AttributeError):
        return None


def _int(cfg: dict, key: str, source: str, default: int | None = None) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise EngineError(f"{source} lacks {key!r}: not a decoder config this planner reads "
                          "(Llama, Llama 4, Qwen, Mistral style)")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EngineError(f"{source}: {key} must be a positive integer, not {value!r}")
    return value


def _opt(cfg: dict, source: str, *keys: str) -> int:
    """The first of `keys` that is set, as a non-negative int; 0 when none is."""
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise EngineError(f"{source}: {key} must be a non-negative integer, not {value!r}")
        return value
    return 0


def _step_of(ids: list[int], layers: int) -> int | None:
    """The step s with ids == [i for i if (i+1) % s == 0], else None."""
    for step in range(1, layers + 1):
        if [i for i in range(layers) if (i + 1) % step == 0] == ids:
            return step
    return None


def arch_from_config(cfg: dict[str, Any], name: str, source: str = "config.json") -> ModelArch:
    """A ModelArch from a Hugging Face config: Llama 4 (nested text_config), or a plain
    Llama/Qwen/Mistral/Mixtral-like one."""
    text = cfg["text_config"] if isinstance(cfg.get("text_config"), dict) else cfg
    layers = _int(text, "num_hidden_layers", source)
    hidden = _int(text, "hidden_size", source)
    q_heads = _int(text, "num_attention_heads", source)
    kv_heads = _int(text, "num_key_value_heads", source, default=q_heads)
    vocab = _int(text, "vocab_size", source)
    window = _int(text, "max_position_embeddings", source)
    head_dim = text.get("head_dim") or (hidden // q_heads if hidden % q_heads == 0 else None)
    if head_dim is None:
        raise EngineError(f"{source}: no head_dim and hidden_size {hidden} is not a multiple of "
                          f"num_attention_heads {q_heads}")
    head_dim = _int({"head_dim": head_dim}, "head_dim", source)
    llama4 = (cfg.get("model_type") == "llama4" or text.get("model_type") == "llama4_text"
              or "no_rope_layers" in text or "interleave_moe_layer_step" in text)

    experts = _opt(text, source, "num_local_experts", "num_experts", "n_routed_experts")
    if llama4:
        dense = _int(text, "intermediate_size_mlp", source, default=16384)
        expert = _int(text, "intermediate_size", source) if experts else 0
    else:
        dense = _int(text, "intermediate_size", source)
        expert = (_opt(text, source, "moe_intermediate_size") or dense) if experts else 0
    shared_size = _opt(text, source, "shared_expert_intermediate_size")
    shared = llama4 or shared_size > 0 or _opt(text, source, "n_shared_experts") > 0
    per_token = _opt(text, source, "num_experts_per_tok") or (1 if experts else 0)

    moe_step = _opt(text, source, "interleave_moe_layer_step", "decoder_sparse_step") or 1
    moe_ids = None
    if isinstance(text.get("moe_layers"), list):
        ids = sorted(i for i in text["moe_layers"] if isinstance(i, int))
        moe_step = _step_of(ids, layers) or moe_step
        moe_ids = None if _step_of(ids, layers) else tuple(ids)

    chunk = text.get("attention_chunk_size")
    chunk = chunk if isinstance(chunk, int) and chunk > 0 else None
    sliding = text.get("sliding_window")
    if text.get("use_sliding_window") is False or not isinstance(sliding, int) or sliding <= 0:
        sliding = None
    kinds = text.get("layer_types")
    if isinstance(kinds, list) and len(kinds) == layers:
        global_ids = [i for i, k in enumerate(kinds) if k == "full_attention"]
        if "chunked_attention" not in kinds:
            chunk = None
        if "sliding_attention" not in kinds:
            sliding = None
    elif llama4 and chunk:
        nope = text.get("no_rope_layers")
        if isinstance(nope, list) and len(nope) == layers:  # 1 = RoPE (local), 0 = NoPE (global)
            global_ids = [i for i, use_rope in enumerate(nope) if not use_rope]
        else:
            interval = _opt(text, source, "no_rope_layer_interval") or 4
            global_ids = [i for i in range(layers) if (i + 1) % interval == 0]
    elif sliding is not None:
        global_ids = []  # every layer slides (Mistral 7B v0.1 style)
    else:
        global_ids = list(range(layers))
    if len(global_ids) < layers and chunk is None and sliding is None:
        global_ids = list(range(layers))  # local layers without a window: plain full attention
    global_step = 0 if not global_ids else (_step_of(global_ids, layers) or 1)
    explicit_global = None if not global_ids or _step_of(global_ids, layers) else tuple(global_ids)

    vision = 0
    if llama4 and isinstance(cfg.get("vision_config"), dict):
        try:
            vision = llama4_vision_params(cfg["vision_config"], hidden)
        except (TypeError, ValueError):
            raise EngineError(f"{source}: vision_config has a non-numeric size") from None
    tie = bool(text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False)))
    return ModelArch(
        name=name, layers=layers, hidden=hidden, q_heads=q_heads, kv_heads=kv_heads,
        head_dim=head_dim, vocab=vocab, dense_intermediate=dense, expert_intermediate=expert,
        num_experts=experts, experts_per_token=per_token, shared_expert=shared and experts > 0,
        shared_expert_intermediate=shared_size, moe_layer_step=moe_step, moe_layer_ids=moe_ids,
        global_layer_step=global_step, global_layer_ids=explicit_global,
        attention_chunk_size=chunk,
        sliding_window=sliding, max_position_embeddings=window, tie_word_embeddings=tie,
        vision_params=vision, family="llama4" if llama4 else "llama")
