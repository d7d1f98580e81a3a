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
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from common.errors import UserError

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0008"  # keep equal to the newest file in migrations/versions (a test checks)
CONNECT_TIMEOUT_S = 10
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer queues for the write lock
_MIGRATION_LOCK = 0x5C0_0715  # PostgreSQL advisory lock key held while migrating

_dbs: dict[str, Engine] = {}
_makers: dict[str, sessionmaker] = {}
_lock = threading.Lock()


class DatabaseError(UserError):
    """The database cannot be used (bad URL, server down, locked): a one-line message."""


_RESTORE = "restore it from a backup (README: Backups) or move it away to start empty"
#: (words in the driver's message, what to do): the first match names the way out
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("malformed", "not a database", "encrypted"), _RESTORE),
    (("readonly", "read-only", "permission denied"),
     "make the file and its folder writable (SQLite also writes FILE-wal and FILE-shm there)"),
    (("database is locked", "table is locked"),
     f"another process held its write lock for over {BUSY_TIMEOUT_MS // 1000} s; try again "
     "when that process (an ingest?) is done"),
    (("unable to open",), "check that its folder exists and is writable"),
    (("disk is full", "disk i/o"), "check the disk (free space, errors)"),
    (("password authentication", "authentication failed", "no password supplied"),
     "check the user and password in SCOUTLENS_DATABASE_URL"),
    (("does not exist",), "create it or fix the name in SCOUTLENS_DATABASE_URL"),
    (("connection refused", "connection failed", "could not connect", "timeout expired",
      "could not translate host", "server closed the connection"),
     "is the PostgreSQL server running at that address? (SCOUTLENS_DATABASE_URL)"),
)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")  # first: WAL may wait for a lock
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


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (`file:` URIs too); None when in memory or not SQLite."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    db = parsed.database or ""
    if str(parsed.query.get("uri", "")).lower() in ("true", "1") and db.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        db = urllib.parse.unquote(db.removeprefix("file:").split("?", 1)[0])
    if db in ("", ":memory:"):
        return None
    return Path(db).expanduser()


def _newer(url: str, revision: str) -> str:
    """A database a newer scoutlens upgraded: this one cannot read it, and must not touch it."""
    return (f"the database {redact(url)} was upgraded by a newer scoutlens (schema {revision}; "
            f"this one knows up to {HEAD_REVISION}): run that version, or restore a backup")


def describe(url: str, error: BaseException) -> str:
    """One line: which database (the file, or the URL without its password), the driver's
    reason, and the way out."""
    why = _why(error)
    file = sqlite_file(url)
    where = str(file) if file else redact(url)
    low = why.lower()
    hint = next((h for words, h in _HINTS if any(w in low for w in words)), "")
    return f"cannot use the database {where}: {why}" + (f"; {hint}" if hint else "")


def _environmental(error: BaseException) -> bool:
    """Errors of the database itself (down, locked, damaged, read-only), not of the code:
    IntegrityError, ProgrammingError and DataError stay tracebacks (they are bugs)."""
    return (isinstance(error, exc.OperationalError | exc.InterfaceError | exc.InternalError)
            or type(error) is exc.DatabaseError)  # SQLite: malformed, not a database


def check_user_url(url: str, home: Path) -> str:
    """The URL a user configured, refused when it would lose or scatter data: an in-memory
    SQLite database (every command would start empty and report success), or a file in a
    folder that does not exist outside SCOUTLENS_HOME (a typo would create a tree of folders).
    Inside SCOUTLENS_HOME the folder is created."""
    url = normalize_url(url)
    try:
        backend = make_url(url).get_backend_name()
    except exc.ArgumentError:
        return url  # get_db says what is wrong with it
    if backend != "sqlite":
        return url
    file = sqlite_file(url)
    if file is None:
        raise DatabaseError(f"SCOUTLENS_DATABASE_URL={url} is an in-memory database: "
                            "nothing would be kept after the command; use sqlite:///PATH, or "
                            "leave it unset for SCOUTLENS_HOME/scoutlens.db")
    parent = file.absolute().parent
    if not parent.is_dir():
        if not parent.resolve().is_relative_to(home.resolve()):
            raise DatabaseError(f"cannot use the database {file}: its folder {parent} does not "
                                "exist (create it, or fix SCOUTLENS_DATABASE_URL)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabaseError(f"cannot use the database {file}: {e}") from None
    return url


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` (a no-op when the schema is there already)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one migrator at a time; DDL is transactional
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except exc.DBAPIError as e:
        if not _environmental(e):
            raise
        raise DatabaseError(describe(engine.url.render_as_string(hide_password=False), e)) \
            from None


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
        db = sqlite_file(url)
        if db is not None:
            if not db.absolute().parent.is_dir():  # never a silent tree of new folders
                raise DatabaseError(f"cannot use the database {db}: its folder "
                                    f"{db.absolute().parent} does not exist (create it first)")
            lock = _file_lock(db.with_name(db.name + ".migrate-lock"))
    try:
        with lock:
            found = current_revision(engine)
            if found != HEAD_REVISION:
                if found is not None and not any((MIGRATIONS / "versions").glob(f"{found}_*.py")):
                    raise DatabaseError(_newer(url, found))
                upgrade(engine)
    except (exc.DBAPIError, OSError, DatabaseError) as e:
        engine.dispose()
        if isinstance(e, DatabaseError):
            raise
        raise DatabaseError(describe(url, e)) from None
    return engine


def get_db(url: str) -> Engine:
    """The engine for URL (one per URL and process), with the schema at head."""
    url = normalize_url(url)
    with _lock:
        engine = _dbs.get(url)
        if engine is None:
            engine = _dbs[url] = _create(url)
        return engine


def dispose_db(url: str) -> None:
    """Close the pooled connections of URL's engine, if one was made (tests, forks)."""
    url = normalize_url(url)
    with _lock:
        engine = _dbs.pop(url, None)
        _makers.pop(url, None)
    if engine is not None:
        engine.dispose()


def _maker(url: str) -> sessionmaker:
    engine = get_db(url)
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
        if isinstance(e, exc.DBAPIError) and _environmental(e):
            raise DatabaseError(describe(normalize_url(url), e)) from e
        raise
    finally:
        session.close()
