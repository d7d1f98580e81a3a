"""A fork server for the unit tests' `python -m app.cli ...` runs: a process that imported the
libraries every command imports (typer, rich, SQLAlchemy, pydantic, numpy: ~0.4 s of CPU a run)
and the app's lower modules once, and forks a fresh process per run that then runs `app.cli` as
`__main__`, exactly as `python -m app.cli` would from there on.

Why: ~215 CLI runs made up most of `make test-fast`'s CPU. Each run is still its own process
with its own file descriptors, environment, working directory, exit status and signals; only
imports are inherited, and not those of app.cli and app.commands (their module-level consoles
read the environment and the terminal when made). A run whose environment differs
from the server's in anything read at import or interpreter start (locale, PYTHON*, terminal
width and colour, thread counts, hub variables) is run as a real subprocess instead.

`run(argv, **kw)` takes subprocess.run's arguments; tests/unit/conftest.py routes
`subprocess.run([sys.executable, "-m", "app.cli", ...])` here. SCOUTLENS_TEST_REAL_CLI=1 turns
it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PRELOAD = ("typer", "typer.main", "typer.rich_utils", "rich.console", "rich.progress", "rich.table",
           "rich.markup", "rich.text", "rich.panel", "pydantic", "sqlalchemy",
           "sqlalchemy.orm", "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql",
           "alembic.command", "alembic.config", "alembic.runtime.migration", "numpy", "bm25s",
           "Stemmer", "PIL.Image", "httpx", "yaml", "requests", "pathspec",
           "detect_secrets.core.scan", "detect_secrets.util.filetype", "sqlite3",
           "multiprocessing.util", "concurrent.futures",
           # a dry run's tokenizer (not torch, not the model classes: those read settings the app
           # sets when it loads a model)
           "transformers.tokenization_utils_fast")
#: the app's modules under its commands, which the commands import when they run: they read no
#: environment and make no console at import (test_cli_zygote checks). Not app.cli or
#: app.commands: their module-level consoles read the terminal and environment when made.
APP_PRELOAD = ("app.services.ask", "app.services.ingesting", "app.services.catalog",
               "app.services.packing", "app.services.search", "app.services.reports",
               "app.services.history", "app.services.portable", "app.services.changes",
               "app.services.backends", "app.progress", "ingest.pipeline", "engine.embedded",
               "engine.registry", "engine.convert")
#: environment read at interpreter start or by a preloaded module's import: a run that sets any
#: of these differently from the server gets a real subprocess. Not COLUMNS or TERM: rich reads
#: those when a console is made, in the app's modules, which are not preloaded.
START_KEYS = ("PYTHON", "LC_", "LANG", "LANGUAGE", "FORCE_COLOR", "NO_COLOR", "TTY_", "PY_COLORS",
              "TERMINAL_WIDTH", "GITHUB_ACTIONS", "CLICOLOR", "OMP_", "OPENBLAS_", "MKL_", "NUMPY_",
              "SQLALCHEMY_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "JUPYTER", "_TYPER", "HOME",
              "XDG_")


def _start_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(START_KEYS)}


# ---------------------------------------------------------------- the server (its own process)

def _serve(path: str):
    """Accept runs on the socket PATH until stdin closes (the test worker is gone). Returns
    only in a forked child, with the function that runs its command."""
    import gc
    import importlib

    for name in PRELOAD + APP_PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError):  # the secret scan's detectors, as ingest loads them
        import pkgutil

        import detect_secrets.plugins as plugins
        for info in pkgutil.iter_modules(plugins.__path__, "detect_secrets.plugins."):
            importlib.import_module(info.name)
    # a child's exit otherwise walks (and so copies) every preloaded object: 0.3 s against 0.06
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin, selectors.EVENT_READ, "parent")
    print("ready", flush=True)
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, its connection)
    while True:
        for key, _ in sel.select():
            if key.data == "parent":
                if not os.read(sys.stdin.fileno(), 1024):
                    for pid, _conn in waiting.values():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    os._exit(0)
            elif key.data == "accept":
                conn, _ = listener.accept()
                fds: list[int] = []
                try:
                    msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                    request = json.loads(msg)
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                except Exception:  # a broken request ends its connection, never the server
                    for fd in fds:
                        os.close(fd)
                    conn.close()
                    continue
                if pid == 0:
                    sel.close()
                    listener.close()
                    conn.close()
                    for pidfd, (_pid, other) in waiting.items():
                        os.close(pidfd)
                        other.close()
                    return lambda: _child(request, fds)
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                waiting[pidfd] = (pid, conn)
                sel.register(pidfd, selectors.EVENT_READ, "child")
                with contextlib.suppress(OSError):
                    conn.sendall(f"{pid}\n".encode())
            else:
                pidfd = key.fd
                pid, conn = waiting.pop(pidfd)
                sel.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):  # the test gave up waiting (a timeout)
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                conn.close()


def _child(request: dict, fds: list[int]) -> None:
    """Become `python -m app.cli ARGS` in REQUEST's directory and environment, on FDS."""
    import runpy

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()
    sys.argv = ["-m", *request["args"]]
    runpy.run_module("app.cli", run_name="__main__", alter_sys=True)


# ---------------------------------------------------------------- the client (a test worker)

class _Server:
    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="scoutlens-zygote-")
        self.path = os.path.join(self.folder, "socket")
        self.env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import tests.cli_zygote as z; z._main()", self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if self.proc.stdout.readline().strip() != b"ready":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the CLI fork server did not start")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.folder)
        except OSError:
            pass


_server: _Server | None = None
_lock = threading.Lock()


def _main() -> None:
    job = _serve(sys.argv[1])
    job()  # in a forked child: SystemExit and uncaught errors end it as they end `python -m`


def close() -> None:
    global _server
    with _lock:
        if _server is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _server.close()
            _server = None


class Unavailable(Exception):
    """The server could not start the run (nothing was started): run it as a real subprocess."""


def forkable(args, kw: dict) -> bool:
    """Whether subprocess.run(ARGS, **KW) is a CLI run the server can give."""
    if os.environ.get("SCOUTLENS_TEST_REAL_CLI") == "1":
        return False
    if not isinstance(args, (list, tuple)) or len(args) < 3 or not all(
            isinstance(a, (str, bytes)) for a in args):
        return False
    if [os.fsdecode(a) for a in args[:3]] != [sys.executable, "-m", "app.cli"]:
        return False
    allowed = {"capture_output", "stdout", "stderr", "stdin", "input", "text", "encoding",
               "errors", "env", "cwd", "timeout", "check", "universal_newlines"}
    if set(kw) - allowed:
        return False
    env = kw.get("env")
    base = os.environ if _server is None else _server.env
    return env is None or _start_env(dict(env)) == _start_env(dict(base))


def _server_now() -> _Server:
    global _server
    with _lock:
        if _server is None:
            try:
                _server = _Server()
            except (OSError, RuntimeError) as exc:
                raise Unavailable(str(exc)) from None
        return _server


def _fd_for(spec, default_fd: int, mode: str, mine: list, theirs: list) -> int:
    """The descriptor a child gets for one of its standard streams."""
    if spec is None:
        return default_fd
    if spec == subprocess.DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR)
        theirs.append(fd)
        return fd
    if spec == subprocess.PIPE:
        r, w = os.pipe()
        child, ours = (r, w) if mode == "r" else (w, r)
        theirs.append(child)
        mine.append(ours)
        return child
    if spec == subprocess.STDOUT:
        return -1  # filled in by the caller: the child's stdout
    return spec if isinstance(spec, int) else spec.fileno()


def run(args, **kw) -> subprocess.CompletedProcess:
    """subprocess.run(ARGS, **KW) for `python -m app.cli ...`, forked from the server."""
    server = _server_now()
    stdin = kw.get("stdin")
    data = kw.get("input")
    if data is not None:
        stdin = subprocess.PIPE
    out_spec, err_spec = kw.get("stdout"), kw.get("stderr")
    if kw.get("capture_output"):
        out_spec = err_spec = subprocess.PIPE
    theirs: list[int] = []
    mine_in: list[int] = []
    mine_out: list[int] = []
    mine_err: list[int] = []
    fd_in = _fd_for(stdin, 0, "r", mine_in, theirs)
    fd_out = _fd_for(out_spec, 1, "w", mine_out, theirs)
    fd_err = _fd_for(err_spec, 2, "w", mine_err, theirs)
    if fd_err == -1:
        fd_err = fd_out
    text = bool(kw.get("text") or kw.get("universal_newlines") or kw.get("encoding")
                or kw.get("errors"))
    env = dict(os.environ if kw.get("env") is None else kw["env"])
    cwd = os.fspath(kw.get("cwd") or os.getcwd())
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    reply = conn.makefile("rb")
    try:
        conn.connect(server.path)
        request = {"args": [os.fsdecode(a) for a in args[3:]], "env": env, "cwd": cwd}
        socket.send_fds(conn, [json.dumps(request).encode()], [fd_in, fd_out, fd_err])
        pid = int(reply.readline())
    except (OSError, ValueError) as exc:
        reply.close()
        conn.close()
        for fd in mine_in + mine_out + mine_err:
            os.close(fd)
        close()  # a server that cannot start runs is replaced at the next run
        raise Unavailable(str(exc)) from None
    finally:
        for fd in theirs:
            os.close(fd)
    if text and isinstance(data, str):
        data = data.encode(kw.get("encoding") or "utf-8", kw.get("errors") or "strict")
    try:
        out, err = _communicate(mine_in, mine_out, mine_err, data, kw.get("timeout"))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        reply.readline()
        reply.close()
        conn.close()
        raise subprocess.TimeoutExpired(args, kw["timeout"]) from None
    status = reply.readline()
    reply.close()
    conn.close()
    if not status:
        raise RuntimeError(f"the CLI fork server ended during {args[3:]}")
    code = int(status)
    if text:
        enc, errs = kw.get("encoding") or "utf-8", kw.get("errors") or "strict"
        out = None if out is None else _text(out, enc, errs)
        err = None if err is None else _text(err, enc, errs)
    done = subprocess.CompletedProcess(list(args), code, out, err)
    if kw.get("check"):
        done.check_returncode()
    return done


def _text(data: bytes, encoding: str, errors: str) -> str:
    return data.decode(encoding, errors).replace("\r\n", "\n").replace("\r", "\n")


def _communicate(ins: list[int], outs: list[int], errs: list[int], data: bytes | None,
                 timeout: float | None):
    """Write DATA to the child's stdin pipe and read its stdout/stderr pipes to their ends."""
    deadline = None if timeout is None else time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    chunks: dict[int, list[bytes]] = {}
    for fd in outs + errs:
        sel.register(fd, selectors.EVENT_READ)
        chunks[fd] = []
    pending = memoryview(data or b"")
    for fd in ins:
        if pending:
            sel.register(fd, selectors.EVENT_WRITE)
        else:
            os.close(fd)
    try:
        while sel.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise subprocess.TimeoutExpired("app.cli", timeout)
            for key, _ in sel.select(wait):
                if key.fd in chunks:
                    block = os.read(key.fd, 1 << 16)
                    if block:
                        chunks[key.fd].append(block)
                    else:
                        sel.unregister(key.fd)
                        os.close(key.fd)
                else:
                    try:
                        n = os.write(key.fd, pending[:1 << 16])
                    except BrokenPipeError:
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        sel.unregister(key.fd)
                        os.close(key.fd)
    finally:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fd)
            os.close(key.fd)
        sel.close()
    out = b"".join(chunks[outs[0]]) if outs else None
    err = b"".join(chunks[errs[0]]) if errs else None
    return out, err
