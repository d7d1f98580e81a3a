"""detect-secrets imported without loading requests: its plugins import requests (0.1 s of every
command that reads a file: urllib3, charset_normalizer, ssl) only to check a found secret
online, which scoutlens never does (ingest/secrets.py uses their patterns and filters)."""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager


class _Deferred(types.ModuleType):
    """requests as detect-secrets imports it. While the import runs (in its thread), a name
    looked up is a placeholder (its annotations name `requests.Response`); any other use, by
    anyone, at any time, loads the real requests and is answered by it."""

    def __init__(self) -> None:
        super().__init__("requests")
        self._importing: int | None = threading.get_ident()

    def __getattr__(self, name: str) -> object:
        if self._importing == threading.get_ident():
            if name.startswith("__"):
                raise AttributeError(name)
            return _Placeholder(f"requests.{name}")
        return getattr(_real(self), name)


class _Placeholder:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}, not loaded>"


def _real(deferred: _Deferred) -> types.ModuleType:
    if sys.modules.get("requests") is deferred:
        del sys.modules["requests"]
    return importlib.import_module("requests")


@contextmanager
def without_requests() -> Iterator[None]:
    """Inside: `import requests` gives a stand-in that loads requests on first real use,
    unless requests is imported already; out of the block, requests imports as itself."""
    if "requests" in sys.modules:
        yield
        return
    deferred = _Deferred()
    sys.modules["requests"] = deferred
    try:
        yield
    finally:
        deferred._importing = None
        if sys.modules.get("requests") is deferred:
            del sys.modules["requests"]
