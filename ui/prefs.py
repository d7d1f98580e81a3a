"""Settings chosen in the web UI (backend, endpoint, model, upload limit), kept in a JSON file in
the data folder so they survive restarts; environment settings are the defaults. They apply to
everyone on the server, so only the operator or an admin saves them (app.services.access)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from app.services.access import Who, require_manager
from app.services.backends import BACKENDS
from app.settings import MAX_UPLOAD_MB, get_settings
from common.files import atomic_write_text
from engine.types import EngineError


@dataclass(frozen=True)
class Prefs:
    backend: str = "embedded"
    endpoint: str = ""
    model: str = ""
    upload_mb: int = 200

    def validated(self) -> Prefs:
        self = replace(self, endpoint=self.endpoint.strip(), model=self.model.strip())
        if self.backend not in BACKENDS:
            raise EngineError(f"backend must be one of {', '.join(BACKENDS)}")
        if self.backend == "openai" and not self.endpoint.strip():
            raise EngineError("the openai backend needs an endpoint URL, e.g. "
                              "http://127.0.0.1:8000/v1")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise EngineError(f"endpoint must start with http:// or https://: {self.endpoint!r}")
        if not 1 <= self.upload_mb <= MAX_UPLOAD_MB:
            raise EngineError(f"upload limit must be 1 to {MAX_UPLOAD_MB} MB")
        return self


def _path() -> Path:
    return get_settings().home_dir / "ui.json"


def defaults() -> Prefs:
    s = get_settings()
    backend = "openai" if s.endpoint else s.backend
    return Prefs(backend=backend, endpoint=s.endpoint or "", model=s.model or "")


def load() -> Prefs:
    """The saved prefs, or the defaults; a damaged file is ignored rather than fatal."""
    base = defaults()
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return base
    known = {f.name for f in fields(Prefs)}
    try:
        return replace(base, **{k: v for k, v in data.items() if k in known}).validated()
    except (TypeError, EngineError):
        return base


def save(prefs: Prefs, who: Who = None) -> Prefs:
    """Validate and store; NotAllowed for anyone but the operator or an admin, whatever the
    page showed them."""
    require_manager(who, "change the settings")
    prefs = prefs.validated()
    atomic_write_text(_path(), json.dumps(asdict(prefs), indent=2))  # never half-written
    return prefs
