"""`embedded`: the model in this process (engine.embedded): the folder named, else the configured
one, else the bundled one."""

from __future__ import annotations

from engine.registry import BackendConfig, register
from engine.types import Backend, EngineError


@register("embedded")
def build(config: BackendConfig) -> Backend:
    from engine.embedded import EmbeddedBackend

    model = config.model or (config.default_model() if config.default_model else None)
    if not model:
        raise EngineError("the embedded backend needs a model folder (--model)")
    return EmbeddedBackend(model, dtype=config.dtype, prefill_chunk=config.prefill_chunk,
                           kv_block=config.kv_block,
                           kv_dir=config.kv_dir() if config.kv_dir else None,
                           kv_memory_bytes=config.kv_memory_bytes,
                           kv_disk_bytes=config.kv_disk_bytes, reuse=config.reuse,
                           progress=config.progress, weights=config.weights,
                           device=config.device)
