"""Build a backend from explicit choices, falling back to settings: the one place that turns
configuration into an engine (the engine package itself reads no settings). Which backends exist
is engine.registry's business: a new one registers itself there, nothing here changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.settings import get_settings
from engine import registry
from engine.types import Backend

BUNDLED_MODEL = "smollm2-135m-instruct"  # the bundled model's folder under SCOUTLENS_HOME/models


class _Names(Sequence[str]):
    """The registered backends' names, read at each use, so a check made with `in BACKENDS`
    (the UI's settings, eval dry runs) knows a backend registered after this import."""

    def __getitem__(self, index):
        return registry.names()[index]

    def __len__(self) -> int:
        return len(registry.names())

    def __repr__(self) -> str:
        return repr(registry.names())


BACKENDS: Sequence[str] = _Names()


def bundled_model_dir() -> str:
    """The bundled model as a safetensors folder under SCOUTLENS_HOME/models (converted from
    its GGUF on first use)."""
    from engine.convert import ensure_safetensors_model

    return str(ensure_safetensors_model(get_settings().home_dir / "models" / BUNDLED_MODEL))


def make_backend(backend: str | None = None, *, endpoint: str | None = None,
                 model: str | None = None, prefill_chunk: int | None = None,
                 reuse: bool = True, progress: Callable[[int, int], None] | None = None,
                 weights: bool = True, device: str | None = None) -> Backend:
    """The backend chosen, else the configured one. Without `weights` the embedded model is
    only its tokenizer and config (to count and plan: `--dry-run`); an endpoint loads nothing
    either way."""
    s = get_settings()
    endpoint = endpoint or s.endpoint
    if backend is None:  # an endpoint, given or configured, means: talk to that server
        backend = "openai" if endpoint else s.backend
    config = registry.BackendConfig(
        endpoint=endpoint, model=model or None,
        default_model=lambda: s.model or bundled_model_dir(), dtype=s.dtype,
        device=device or s.device,
        prefill_chunk=prefill_chunk or s.prefill_chunk, kv_block=s.kv_block,
        kv_dir=lambda: s.kv_dir,
        kv_memory_bytes=int(s.kv_memory_gb * 2**30), kv_disk_bytes=int(s.kv_disk_gb * 2**30),
        max_images=s.max_images, reuse=reuse, weights=weights, progress=progress)
    return registry.build(backend, config)
