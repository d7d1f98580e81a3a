"""Load a local causal LM for the embedded backend, and turn a request into token ids.

The default is the bundled SmolLM2-135M-Instruct, converted once from its GGUF into a plain
safetensors folder (a bf16 folder loads in about a second, the packed GGUF in ~15 s). Prompts are
tokenized in pieces: chat-template text with special tokens, the user's prefix and prompt with
special tokens treated as plain text (a document cannot forge a turn), so the prefix's ids do not
depend on the question and its KV blocks can be reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.chat_tokenizer import ChatTokenizer
from engine.types import CompletionRequest, EngineError, ModelTokenizer, PromptCount

PLACEHOLDER = "\x00SCOUTLENS-CONTENT\x00"


@dataclass
class LoadedModel:
    model: object  # transformers PreTrainedModel
    tokenizer: object  # transformers PreTrainedTokenizerBase
    name: str
    key: str  # model identity + dtype, keys the KV cache
    window: int
    eos_ids: frozenset[int]
    dtype: str
    device: str = "cpu"  # where the weights and the KV buffer live: cpu | cuda


def model_key(folder: Path, dtype: str) -> str:
    """Identity of a model folder: its config and its weight files' sizes and times, plus dtype."""
    h = hashlib.sha256(dtype.encode())
    for p in sorted(folder.iterdir()):
        if p.name == "config.json":
            h.update(p.read_bytes())
        elif p.suffix in (".safetensors", ".bin", ".gguf"):
            st = p.stat()
            h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


DEVICES = ("auto", "cuda", "cpu")


def resolve_device(device: str) -> str:
    """`auto` is the GPU when torch sees one, else the CPU; `cuda` without one is an error
    that says so (never a CUDA traceback later)."""
    if device not in DEVICES:
        raise EngineError(f"unknown device {device!r}: {' | '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "auto":
        return "cpu"
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    raise EngineError(f"--device cuda, but torch {torch.__version__} ({build}) sees no CUDA "
                      "GPU here: use --device cpu (or auto)")


def load_model(model: str | Path, dtype: str = "bfloat16", threads: int = 0,
               weights: bool = True, device: str = "cpu") -> LoadedModel:
    """`model`: a local Hugging Face causal-LM folder (the services convert the bundled one).
    Without `weights` only the tokenizer and config are read: enough to count and plan a
    request (`ask --dry-run`), in a fraction of the time and memory. `device`: cpu | cuda |
    auto; on a GPU the weights go to it in `dtype` (bf16 by default) and attention is torch's
    SDPA, which picks the flash or memory-efficient kernel."""
    # the device first, before transformers' model classes load (seconds) or a weight is read;
    # a dry run (no weights) checks only the name
    if device not in DEVICES:
        raise EngineError(f"unknown device {device!r}: {' | '.join(DEVICES)}")
    try:
        where = resolve_device(device) if weights else device
    except ImportError:
        raise EngineError("the embedded backend needs torch (pip install -e '.[embedded]')") \
            from None
    if dtype not in ("bfloat16", "float32", "float16"):
        raise EngineError(f"unknown dtype {dtype!r}: bfloat16 | float32 | float16")
    folder = Path(model).expanduser()
    if not weights and folder.is_dir() and (folder / "config.json").is_file() \
            and (light := ChatTokenizer.load(folder)) is not None:
        # counting only, and the folder's tokenizer reads without transformers (which imports
        # torch): 1.5 s of a dry run
        return _loaded(folder, None, light, dtype, device, named=bool(model))
    try:
        from transformers import PreTrainedTokenizerFast
        if weights:
            import torch
            from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise EngineError(f"the embedded backend needs torch and transformers ({exc.name} is "
                          "missing): pip install -e '.[embedded]'") from None
    if not folder.is_dir():
        raise EngineError(f"model folder not found: {folder}")
    if not (folder / "config.json").is_file():
        raise EngineError(f"{folder} is not a Hugging Face model folder (no config.json)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress and errors speak for us
    hf_logging.set_verbosity_error()
    if weights:
        # grouped-query attention inside torch's SDPA kernel instead of transformers copying K
        # and V once per query head (repeat_kv): same logits, a third less time on a warm
        # prefill at 7K.
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")
        torch.set_num_threads(threads or os.cpu_count() or 1)
    if where == "cuda":  # before the weights fill host memory: they may not fit the GPU anyway
        _check_fits_gpu(folder, _weights_bytes(folder, dtype))
    try:
        if (folder / "tokenizer.json").is_file():  # AutoTokenizer's first call costs ~1 s more
            tok = PreTrainedTokenizerFast.from_pretrained(folder)
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(folder)
        lm = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)) \
            if weights else None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # TypeError: a config not a dict
        raise EngineError(f"cannot load the model in {folder}: {exc}") from None
    if lm is not None:
        if where == "cuda":
            lm = _to_gpu(lm, folder)
        lm.eval()
    return _loaded(folder, lm, tok, dtype, where, named=bool(model))


def _loaded(folder: Path, lm, tok, dtype: str, where: str, named: bool) -> LoadedModel:
    if lm is not None:
        window = int(getattr(lm.config, "max_position_embeddings", 0) or 2048)
    else:
        from engine.arch import model_window

        window = model_window(folder) or 2048
    eos = set()
    generation = getattr(lm, "generation_config", None)
    for source in (getattr(generation, "eos_token_id", None), tok.eos_token_id):
        if isinstance(source, int):
            eos.add(source)
        elif source:
            eos.update(source)
    name = json.loads((folder / "config.json").read_text()).get("_name_or_path") or folder.name
    return LoadedModel(model=lm, tokenizer=tok, name=str(name) if named else
                       "SmolLM2-135M-Instruct (bundled)", key=model_key(folder, dtype),
                       window=window, eos_ids=frozenset(eos), dtype=dtype, device=where)


def _weights_bytes(folder: Path, dtype: str) -> int:
    """The weights' size in `dtype`, from the safetensors files' headers alone (0: unknown)."""
    import struct

    size = {"bfloat16": 2, "float16": 2, "float32": 4}[dtype]
    total = 0
    for path in folder.glob("*.safetensors"):
        try:
            with open(path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 100 << 20:
                    return 0
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            return 0
        for name, info in header.items():
            if name != "__metadata__" and isinstance(info, dict):
                count = 1
                for dim in info.get("shape", []):
                    count *= int(dim)
                total += count * size
    return total


def _check_fits_gpu(folder: Path, need: int) -> None:
    import torch

    free, total = torch.cuda.mem_get_info()
    if need > free:
        raise EngineError(f"the model in {folder} needs {need / 2**30:.1f} GiB for its weights; "
                          f"{torch.cuda.get_device_name()} has {free / 2**30:.1f} GiB free of "
                          f"{total / 2**30:.1f}: use a smaller or quantized model, or "
                          "--device cpu")


def _to_gpu(lm, folder: Path):
    """The weights onto the GPU, or a one-line error naming what they need and what is free."""
    import torch

    need = sum(p.numel() * p.element_size() for p in lm.parameters())
    _check_fits_gpu(folder, need)
    try:
        return lm.to("cuda")
    except torch.OutOfMemoryError:
        raise EngineError(f"the model in {folder} ({need / 2**30:.1f} GiB) does not fit in "
                          f"{torch.cuda.get_device_name()}'s free memory: use a smaller or "
                          "quantized model, or --device cpu") from None


def _plain(tok, text: str) -> list[int]:
    """User text: special-token strings inside it stay plain text."""
    if not text:
        return []
    return tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def _special(tok, text: str) -> list[int]:
    if not text:
        return []
    return tok(text, add_special_tokens=False)["input_ids"]


def encode_request(lm: LoadedModel, request: CompletionRequest) -> tuple[list[int], int]:
    """Token ids of the whole prompt, and how many of them belong to the reusable prefix part."""
    tok = lm.tokenizer
    if not request.chat:
        bos = [tok.bos_token_id] if getattr(tok, "bos_token_id", None) is not None else []
        prefix = bos + _plain(tok, request.prefix)
        return prefix + _plain(tok, request.prompt), len(prefix)
    if not getattr(tok, "chat_template", None):
        raise EngineError(f"{lm.name} has no chat template: use raw completion (--raw)")
    messages = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    # earlier turns go in as placeholders too, so their text is tokenized as plain text (a
    # special-token string inside a turn stays text), the template's own parts as specials
    marks = [f"\x00SCOUTLENS-TURN-{i}\x00" for i in range(len(request.history))]
    messages += [{"role": role, "content": mark}
                 for (role, _), mark in zip(request.history, marks, strict=True)]
    messages.append({"role": "user", "content": PLACEHOLDER})
    from jinja2.exceptions import TemplateError  # (SecurityError too: the sandbox said no)

    try:
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError as exc:
        raise EngineError(f"{lm.name}'s chat template failed: {exc}") from None
    ids: list[int] = []
    for mark, (_, text) in zip(marks, request.history, strict=True):
        before, sep, rendered = rendered.partition(mark)
        if not sep:
            raise EngineError(f"{lm.name}'s chat template dropped a turn of the conversation")
        ids += _special(tok, before) + _plain(tok, text)
    head, sep, tail = rendered.partition(PLACEHOLDER)
    if not sep:
        raise EngineError(f"{lm.name}'s chat template dropped the user message")
    prefix = ids + _special(tok, head) + _plain(tok, request.prefix)
    return prefix + _plain(tok, request.prompt) + _special(tok, tail), len(prefix)


class LoadedTokenizer(ModelTokenizer):
    """The loaded model's own tokenizer: exact for any model folder; a request is counted by
    encoding it exactly as the backend will (this model sees no pictures, only frames' words)."""

    def __init__(self, lm: LoadedModel):
        self._lm = lm
        self.spec, self.name = f"model:{lm.name}", f"{lm.name} (the loaded model's tokenizer)"

    @property
    def fingerprint(self) -> str:  # type: ignore[override]
        return f"model-{self._lm.key[:16]}"

    def encode(self, text: str) -> list[int]:
        return _plain(self._lm.tokenizer, text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._lm.tokenizer.decode(list(ids))  # type: ignore[attr-defined]

    def count_request(self, request: CompletionRequest) -> PromptCount:
        return PromptCount(len(encode_request(self._lm, request)[0]))

    def chat_ids(self, content: str, system: str | None = None) -> list[int] | None:
        ids, prefix = encode_request(self._lm, CompletionRequest(prompt="", prefix=content,
                                                                 system=system))
        return ids[:prefix]
