"""Every test gets its own data folder (SCOUTLENS_HOME) and SQLite database; tests that take
`db_url` run twice, on that SQLite file and on a fresh database of a real PostgreSQL server."""

from __future__ import annotations

import uuid

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


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server on loopback for the session. Not installed or not starting is a
    failure, never a skip: CI installs it, and a silent skip would hide PostgreSQL bugs."""
    from pg import PgServer, PgUnavailable

    try:
        server = PgServer().start()
    except PgUnavailable as exc:
        pytest.fail(f"the PostgreSQL database tests need a PostgreSQL server: {exc}",
                    pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server, monkeypatch):
    """A fresh, empty PostgreSQL database, set as SCOUTLENS_DATABASE_URL; dropped afterwards."""
    from app.database import dispose_db

    name = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_server.create_db(name)
    monkeypatch.setenv("SCOUTLENS_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    dispose_db(url)
    pg_server.drop_db(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, scoutlens_home):
    """The database URL the services use, once per backend: SQLite in SCOUTLENS_HOME, then a
    fresh PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return get_settings().db_url


#: fixtures that bring a real model or a real PostgreSQL server: their tests are integration tests
INTEGRATION_FIXTURES = frozenset({"model_dir", "model_env", "pg_server", "pg_url"})


def pytest_collection_modifyitems(items):
    """Mark `integration` every test that loads the real model or runs on PostgreSQL (a
    `db_url` test's PostgreSQL half included), so `make test-fast` can leave them out; the
    rest needs nothing but the venv."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        spec = getattr(item, "callspec", None)
        on_pg = spec is not None and spec.params.get("db_url") == "postgresql"
        if names & INTEGRATION_FIXTURES or on_pg:
            item.add_marker(pytest.mark.integration)
