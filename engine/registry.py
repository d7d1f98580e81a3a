"""Backends by name: each module in `engine/backends/` registers one, so a new backend (llama.cpp's
server, SGLang, a hosted API) is one module there and no edit of a factory.

A registered builder takes a BackendConfig (the caller's choices over the settings, merged by the
app layer: the engine reads no settings) and returns a Backend. The registry imports only the
small registering modules; a builder imports its backend's heavy code (torch, httpx) when called.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.types import Backend, EngineError


@dataclass(frozen=True)
class BackendConfig:
    """Everything a backend may be built from; each builder takes the fields it needs."""

    endpoint: str | None = None  # an OpenAI-compatible server's URL
    model: str | None = None  # the one named: a model folder (in-process) or a served name
    #: the model when none is named, for backends that need one (a server picks its own): the
    #: configured folder, else the bundled one, found (and converted) only when called
    default_model: Callable[[], str] | None = None
    dtype: str = "bfloat16"
    device: str = "auto"  # in-process models: cpu | cuda | auto (the GPU when there is one)
    prefill_chunk: int | None = None  # None: the backend's default for its device
    kv_block: int = 16
    kv_dir: Callable[[], Path] | None = None  # the on-disk KV folder, made when called
    kv_memory_bytes: int = 2 << 30
    kv_disk_bytes: int = 20 << 30
    max_images: int | None = None  # images per request the server takes (None: no limit known)
    reuse: bool = True  # keep a prefix KV cache
    weights: bool = True  # False: tokenizer and config only (to count and plan)
    progress: Callable[[int, int], None] | None = None  # prefill (done, total) tokens


Builder = Callable[[BackendConfig], Backend]

_builders: dict[str, Builder] = {}
_discovered = False


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: `@register("sglang")` on a builder makes `--backend sglang` choose it. A name
    taken by another module's builder is a programming error (ValueError), never a silent swap."""

    def add(build: Builder) -> Builder:
        taken = _builders.get(name)
        if taken is not None and taken.__module__ != build.__module__:
            raise ValueError(f"backend {name!r} is already registered by {taken.__module__}")
        _builders[name] = build
        return build

    return add


def discover() -> None:
    """Import every module of `engine.backends` once (each registers its backend)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import engine.backends as package

    for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
        importlib.import_module(info.name)


def names() -> tuple[str, ...]:
    """The registered backends' names, sorted (the order errors list them in)."""
    discover()
    return tuple(sorted(_builders))


def build(name: str, config: BackendConfig) -> Backend:
    """The backend registered as `name`, built from `config`."""
    discover()
    builder = _builders.get(name)
    if builder is None:
        raise EngineError(f"unknown backend {name!r}: {' | '.join(names())}")
    return builder(config)
