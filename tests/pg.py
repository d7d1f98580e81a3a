"""A throwaway PostgreSQL server on loopback, for the tests and the load benchmark.

Why a real server: SQLite forgives what PostgreSQL refuses (over-long strings, NUL characters,
concurrent writers that must really be serialised), so the database tests run on both. It is
Debian's PostgreSQL (`/usr/lib/postgresql/N/bin`, installed by `.ci/run`); initdb refuses to
run as root, so as root the server runs as the `postgres` user in a temporary folder it owns.
It listens on 127.0.0.1 only, with a random password (scram-sha-256), and fsync off (a test
server: nothing in it must survive a power cut).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql


class PgUnavailable(RuntimeError):
    """PostgreSQL is not installed here, or would not start."""


def bindir() -> Path:
    """The newest Debian PostgreSQL, else whatever `pg_ctl` is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise PgUnavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no "
                        "pg_ctl on PATH): apt-get install postgresql (.ci/run does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """start() -> create_db(name) -> URL ... drop_db(name) -> stop()."""

    def __init__(self) -> None:
        self.password = secrets.token_hex(12)
        self.port = 0
        self.dir: Path | None = None
        self._as_user: list[str] = []

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def _run(self, *argv: str | Path, timeout: float = 120) -> None:
        done = subprocess.run([*self._as_user, *map(str, argv)], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode:
            log = ""
            if self.dir and (self.dir / "log").exists():
                log = (self.dir / "log").read_text(errors="replace")[-2000:]
            raise PgUnavailable(f"{Path(str(argv[0])).name} failed ({done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()[-1500:]} {log}".strip())

    def start(self) -> PgServer:
        bins = bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="scoutlens-pg-"))
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no `postgres` user to run "
                                    "the server as") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_user:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(bins / "initdb", "-D", self.data, "-U", "postgres", f"--pwfile={pwfile}",
                  "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        pwfile.unlink()
        for _ in range(3):  # the free port may be taken by the time the server binds it
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=300")
            try:
                self._run(bins / "pg_ctl", "-D", self.data, "-l", self.dir / "log", "-w",
                          "-t", "60", "-o", opts, "start")
                return self
            except PgUnavailable:
                if "could not bind" not in (self.dir / "log").read_text(errors="replace"):
                    self.stop()
                    raise
        self.stop()
        raise PgUnavailable("PostgreSQL could not bind a free loopback port")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{db}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               password=self.password, dbname="postgres", autocommit=True)

    def create_db(self, name: str) -> str:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_db(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self._as_user, str(bindir() / "pg_ctl"), "-D", str(self.data),
                            "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
