"""Tokenizers and the shared token-count cache under the data folder (kept apart from the
database so that packing paths never needs SQLAlchemy)."""

from __future__ import annotations

from app.settings import get_settings
from ingest.counting import TokenCache
from ingest.tokenizers import Tokenizer, load_tokenizer


def token_cache(fingerprint: str) -> TokenCache:
    return TokenCache(get_settings().cache_dir / "token_counts.sqlite", fingerprint)


def tokenizer(spec: str) -> Tokenizer:
    """The tokenizer for `spec`, converting what must be converted once under the data folder."""
    return load_tokenizer(spec, get_settings().cache_dir)
