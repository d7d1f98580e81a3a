"""Settings from the environment (prefix SCOUTLENS_), with defaults that need no set-up."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCOUTLENS_", extra="ignore")

    home: Path = Field(default=Path("~/.scoutlens"), description="data folder")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite")
    tokenizer: str = Field(default="cl100k", description="default tokenizer spec")
    workers: int = Field(default=0, description="tokenizer processes; 0 = one per core")

    @property
    def home_dir(self) -> Path:
        path = self.home.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'scoutlens.db'}"

    @property
    def cache_dir(self) -> Path:
        path = self.home_dir / "cache"
        path.mkdir(parents=True, exist_ok=True)
        return path


@cache
def get_settings() -> Settings:
    return Settings()
