"""Every test gets its own data folder (SCOUTLENS_HOME) and SQLite database."""

from __future__ import annotations

import pytest

from app.settings import get_settings


@pytest.fixture(autouse=True)
def scoutlens_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCOUTLENS_HOME", str(home))
    monkeypatch.delenv("SCOUTLENS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The bundled model converted once per test session to a safetensors folder."""
    from engine.convert import ensure_safetensors_model

    return ensure_safetensors_model(tmp_path_factory.mktemp("models") / "smollm2")
