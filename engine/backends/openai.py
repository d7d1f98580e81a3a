"""`openai`: any OpenAI-compatible server (vLLM, SGLang, ...) at an endpoint
(engine.openai_backend)."""

from __future__ import annotations

from engine.registry import BackendConfig, register
from engine.types import Backend, EngineError


@register("openai")
def build(config: BackendConfig) -> Backend:
    if not config.endpoint:
        raise EngineError("the openai backend needs --endpoint URL (or SCOUTLENS_ENDPOINT)")
    from engine.openai_backend import OpenAIBackend

    return OpenAIBackend(config.endpoint, model=config.model or None,
                         max_images=config.max_images)
