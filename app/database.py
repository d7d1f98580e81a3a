"""Engine and sessions; the schema is created (or upgraded) with Alembic on first use.

SQLite (the default, one file in SCOUTLENS_HOME) and PostgreSQL (`postgresql+psycopg://`, for
teams) behave the same to the services: many threads and processes may read and write at once.
SQLite gets WAL (readers never wait for the writer) and a 30 s busy timeout (writers queue instead
of failing); schema upgrades take a lock (a file lock, or a PostgreSQL advisory lock) so that
processes starting together on a fresh database migrate it once.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0003"  # keep equal to the newest file in migrations/versions (a test checks)
CONNECT_TIMEOUT_S = 10
_MIGRATION_LOCK = 0x5C0_0715  # PostgreSQL advisory lock key held while migrating

_engines: dict[str, Engine] = {}
_makers: dict[str, sessionmaker] = {}
_lock = threading.Lock()


class DatabaseError(Exception):
    """The database cannot be used (bad URL, server down, locked): a one-line message."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may wait for a lock
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def normalize_url(url: str) -> str:
    """libpq-style `postgresql://` / `postgres://` URLs use the installed driver, psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparseable URL>"


def _why(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    lines = [ln.strip() for ln in str(orig).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` (a no-op when the schema is there already)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # one migrator at a time; DDL is transactional
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise SQLite migrations across processes (SQLite DDL outside a transaction races)."""
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _create(url: str) -> Engine:
    try:
        parsed = make_url(url)
        kwargs: dict = {"future": True, "pool_pre_ping": True}
        if parsed.get_backend_name() == "postgresql":
            kwargs.update(pool_size=10, max_overflow=20,
                          connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        engine = create_engine(url, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as e:
        raise DatabaseError(f"not a usable database URL {redact(url)} ({_why(e)}): use "
                            "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB") from None
    lock = nullcontext()
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if parsed.database and parsed.database != ":memory:":
            db = Path(parsed.database).expanduser()
            db.parent.mkdir(parents=True, exist_ok=True)
            lock = _file_lock(db.with_name(db.name + ".migrate-lock"))
    try:
        with lock:
            if current_revision(engine) != HEAD_REVISION:
                upgrade(engine)
    except exc.DBAPIError as e:
        engine.dispose()
        raise DatabaseError(f"cannot use the database {redact(url)}: {_why(e)}") from None
    return engine


def get_engine(url: str) -> Engine:
    """The engine for URL (one per URL and process), with the schema at head."""
    url = normalize_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def dispose_engine(url: str) -> None:
    """Close the pooled connections of URL's engine, if one was made (tests, forks)."""
    url = normalize_url(url)
    with _lock:
        engine = _engines.pop(url, None)
        _makers.pop(url, None)
    if engine is not None:
        engine.dispose()


def _maker(url: str) -> sessionmaker:
    engine = get_engine(url)
    url = normalize_url(url)
    with _lock:
        maker = _makers.get(url)
        if maker is None or maker.kw.get("bind") is not engine:
            maker = _makers[url] = sessionmaker(engine, expire_on_commit=False)
        return maker


def lock_key(session: Session, key: str) -> None:
    """Serialise writers of `key` until this transaction ends (e.g. two ingests of one corpus).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: `BEGIN IMMEDIATE`, the database's
    single write lock taken now rather than at the first write, so that what this transaction
    reads before writing cannot be changed by another writer in between. Call it first."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        k = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": k})
    elif conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any error. A database
    that cannot be reached (or stays locked) is a DatabaseError with a one-line message."""
    session = _maker(url)()
    try:
        yield session
        session.commit()
    except BaseException as e:
        with suppress(exc.DBAPIError):  # the connection is gone: nothing to roll back
            session.rollback()
        if isinstance(e, exc.OperationalError | exc.InterfaceError):
            raise DatabaseError(f"database error on {redact(normalize_url(url))}: "
                                f"{_why(e)}") from e
        raise
    finally:
        session.close()
