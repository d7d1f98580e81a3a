"""Turn the bundled GGUF (SmolLM2-135M-Instruct, Q4_1) into a plain safetensors folder, once.

transformers loads a GGUF but keeps its weights packed and refuses `save_pretrained`; vLLM and the
embedded backend want an ordinary Hugging Face folder. So: load the GGUF, build a fresh model from
its config with the quantization config removed, load the dequantized state dict into it and save
that (bf16) with the tokenizer, whose chat template comes along.

The folder is written under a temporary name beside the destination and renamed into place when
complete; a marker inside it records the source GGUF's sha256, so a changed GGUF is converted again
and a half-written folder (no marker, or a stale one) is never used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from engine.types import EngineError

MARKER = "scoutlens-source.json"
DTYPE = "bfloat16"  # vLLM on CPU computes in bf16


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_converted(dest: Path, digest: str) -> bool:
    """A complete conversion of the GGUF with this digest lies in `dest`."""
    try:
        marker = json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("sha256") != digest:
        return False
    return (dest / "config.json").is_file() and any(dest.glob("*.safetensors"))


def ensure_safetensors_model(dest_root: Path, gguf: Path | None = None,
                             dtype: str = DTYPE) -> Path:
    """The safetensors folder for `gguf` (default: the bundled model) at `dest_root`, converting
    it first when it is missing, incomplete or made from a different GGUF. Returns `dest_root`."""
    if gguf is None:
        from ingest.tokenizers import embedded_model_file
        from ingest.types import IngestError

        try:
            gguf = embedded_model_file()
        except IngestError as exc:
            raise EngineError(str(exc)) from None
    gguf = Path(gguf)
    if not gguf.is_file():
        raise EngineError(f"GGUF file not found: {gguf}")
    dest = Path(dest_root).expanduser()
    digest = file_sha256(gguf)  # ~90 MB: a fraction of a second
    if is_converted(dest, digest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        _convert(gguf, work, dtype)
        work.chmod(0o755)  # mkdtemp made it private
        (work / MARKER).write_text(json.dumps({
            "source": str(gguf), "sha256": digest, "dtype": dtype,
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1) + "\n")
        _swap_in(work, dest, digest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _swap_in(work: Path, dest: Path, digest: str) -> None:
    """Move the finished folder to `dest`. A stale or half-written `dest` is moved aside first
    (rename, then delete), so `dest` is at every moment either absent or complete. If another
    process finished the same conversion meanwhile, its folder is kept."""
    for _ in range(3):
        try:
            os.rename(work, dest)
            return
        except OSError:
            if is_converted(dest, digest):
                return  # a concurrent conversion won the race
            if dest.exists():
                trash = dest.parent / f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}"
                with contextlib.suppress(FileNotFoundError):
                    os.rename(dest, trash)
                shutil.rmtree(trash, ignore_errors=True)
    raise EngineError(f"cannot move the converted model into place at {dest}")


def _convert(gguf: Path, out: Path, dtype: str) -> None:
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise EngineError(f"converting the bundled model needs torch and transformers "
                          f"({exc.name} is missing): pip install -e '.[embedded]'") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch_dtype = getattr(torch, dtype)
    folder, name = gguf.parent, gguf.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        with _quiet_gguf():
            packed = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                          dtype=torch_dtype)
    except ImportError as exc:  # gguf / accelerate
        raise EngineError(f"loading the GGUF needs the `gguf` and `accelerate` packages: {exc}") \
            from None
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"cannot load {gguf}: {exc}") from None
    config = packed.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    # a clean config (no GGUF leftovers), then fresh weights filled from the dequantized ones
    config = AutoConfig.for_model(**{k: v for k, v in config.to_dict().items()
                                    if k not in ("quantization_config", "model_type")},
                                  model_type=config.model_type)
    config.dtype = torch_dtype
    plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = plain.load_state_dict(packed.state_dict(), strict=False)
    missing = [k for k in missing if not _tied(plain, k)]
    if missing or unexpected:
        raise EngineError(f"converting {gguf.name}: weights do not match the config "
                          f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    plain.generation_config = packed.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if not getattr(tok, "chat_template", None):
        return
    if not (out / "chat_template.jinja").is_file():
        cfg_path = out / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        if not cfg.get("chat_template"):
            (out / "chat_template.jinja").write_text(tok.chat_template)


@contextlib.contextmanager
def _quiet_gguf():
    """transformers' GGUF reader draws its own tqdm bar on stderr (not switched off by
    `disable_progress_bar`); it would tear through the caller's spinner."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _tied(model, key: str) -> bool:
    """`lm_head.weight` shares the embedding when the config ties them."""
    return key.startswith("lm_head.") and bool(getattr(model.config, "tie_word_embeddings",
                                                       False))
