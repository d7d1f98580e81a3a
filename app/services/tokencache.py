"""The shared token-count cache under the data folder (kept apart from the database so that
packing paths never needs SQLAlchemy)."""

from __future__ import annotations

from app.settings import get_settings
from ingest.counting import TokenCache


def token_cache(fingerprint: str) -> TokenCache:
    return TokenCache(get_settings().cache_dir / "token_counts.sqlite", fingerprint)
