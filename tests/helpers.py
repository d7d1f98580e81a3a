"""Small real inputs made by the tests themselves."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import pymupdf

REPO = Path(__file__).resolve().parents[1]


def git_env() -> dict[str, str]:
    """This process's environment for a git the tests run: no GIT_* variable inherited from the
    shell (a hook's GIT_DIR or GIT_INDEX_FILE would send `init` and `add` elsewhere), and no
    system or global config (a template, an excludes file or safe.directory of this machine's
    would make the repositories the tests build differ from what collect, which reads neither,
    sees)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


def git(repo: Path, *args: str) -> str:
    argv = ["git", "-c", f"core.excludesFile={os.devnull}", "-c", "init.defaultBranch=main",
            "-C", str(repo), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=git_env(),
                          stdin=subprocess.DEVNULL).stdout


def make_repo(root: Path) -> Path:
    """A git repository with nested .gitignore, a binary, a lockfile, a minified file and a
    notebook: the noise a real repository has."""
    repo = root / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "docs").mkdir()
    (repo / "build").mkdir()
    (repo / "src" / "app.py").write_text(
        '"""The application."""\n\nimport os\n\n\n'
        "def load_config(path):\n"
        '    """Read the config file."""\n'
        "    with open(path) as fh:\n"
        "        return fh.read()\n\n\n"
        "class Server:\n"
        '    """Serves requests."""\n\n'
        "    def start(self, port):\n"
        "        return port + 1\n\n"
        "    def stop(self):\n"
        "        return None\n"
    )
    (repo / "src" / "pkg" / "util.js").write_text(
        "export function slugify(s) {\n  return s.toLowerCase().replace(/ /g, '-');\n}\n"
        "class Cache { get(k) { return this[k]; } }\n"
    )
    (repo / "src" / "pkg" / "secret.env").write_text("TOKEN=abc\n")
    (repo / "src" / "pkg" / ".gitignore").write_text("*.env\n")
    (repo / ".gitignore").write_text("build/\n*.log\n")
    (repo / "build" / "out.txt").write_text("built\n")
    (repo / "debug.log").write_text("log line\n")
    (repo / "docs" / "guide.md").write_text("# Guide\n\nRun the server with `start`.\n")
    (repo / "logo.ico").write_bytes(b"\x00\x00\x01\x00" + bytes(range(256)) * 4)
    (repo / "package-lock.json").write_text(json.dumps({"lockfileVersion": 3}))
    (repo / "static.min.js").write_text("var a=1;" * 2000)
    (repo / "analysis.ipynb").write_text(json.dumps({
        "cells": [
            {"cell_type": "markdown", "source": ["# Analysis\n", "Notes here."]},
            {"cell_type": "code", "source": "x = 41 + 1\nprint(x)",
             "outputs": [{"output_type": "stream", "text": "OUTPUT-SHOULD-NOT-APPEAR"}]},
        ],
        "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5,
    }))
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    (repo / "NOTES.txt").write_text("untracked but not ignored\n")
    return repo


def make_facts_repo(root: Path, filler_files: int = 0) -> Path:
    """A small source tree with planted facts to ask about (the vault code 7291 in NOTES.md,
    RETRY_LIMIT = 7 and load_config in src/config.py), plus FILLER_FILES ~1K-token weather logs
    to make it outgrow a window."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "config.py").write_text(
        '"""Configuration values."""\n\nRETRY_LIMIT = 7\n\n\ndef load_config(path):\n'
        '    """Read the config file and return a dict."""\n'
        '    return {"path": path, "retries": RETRY_LIMIT}\n')
    (root / "src" / "app.py").write_text(
        "from config import load_config\n\n\ndef main():\n"
        "    cfg = load_config('app.toml')\n    print(cfg)\n")
    (root / "NOTES.md").write_text("# Notes\n\nThe vault code is 7291.\n")
    for i in range(filler_files):
        body = "".join(f"The weather log for day {i}-{j} says it was mild and grey, with wind "
                       f"from the {['north', 'south', 'east', 'west'][j % 4]}.\n"
                       for j in range(60))
        (root / f"logs/day{i:03d}.md").parent.mkdir(exist_ok=True)
        (root / f"logs/day{i:03d}.md").write_text(body)
    return root


def make_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        if text:
            page.insert_text((72, 72), text)
    doc.set_metadata({"title": path.stem})
    if password:
        doc.save(str(path), encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=password,
                 owner_pw=password + "o")
    else:
        doc.save(str(path))
    return path


def evil_repo(root: Path, marker: Path) -> Path:
    """A real repository whose .git/config runs `touch marker` from fsmonitor, a pager, an
    external diff and a post-index-change hook."""
    repo = root / "r"
    repo.mkdir(parents=True)
    (repo / "a.txt").write_text("hi\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=x", "commit", "-qm", "i")
    cmd = f"touch {marker}; echo"
    git(repo, "config", "core.fsmonitor", cmd)
    git(repo, "config", "core.pager", cmd)
    git(repo, "config", "diff.external", cmd)
    hooks = repo / ".git" / "hooks"
    for hook in ("post-index-change", "post-checkout", "pre-commit"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / hook).chmod(0o755)
    git(repo, "config", "core.hooksPath", str(hooks))
    (repo / "b.txt").write_text("untracked\n")
    return repo


def zip_tree(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return out


def tar_tree(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, path.relative_to(folder).as_posix())
    return out


def slide(text: str, w: int = 640, h: int = 360) -> np.ndarray:
    doc = pymupdf.open()
    page = doc.new_page(width=w / 2, height=h / 2)
    page.insert_text((20, 60), text, fontsize=16)
    pix = page.get_pixmap(dpi=144)
    arr = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)
    return arr[:h, :w, :3].copy()


def make_video(path: Path, texts: list[str], seconds_each: float = 10, fps: int = 5) -> Path:
    frames = [slide(t) for t in texts]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for img in frames:
            for _ in range(int(seconds_each * fps)):
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


TALK_SLIDES = ["Quarterly review", "Revenue grew 12 percent", "The launch date is 14 March",
               "Questions"]


def make_talk(folder: Path) -> Path:
    """A recorded talk in FOLDER: talk.mp4 shows TALK_SLIDES for 10 s each (the launch date only
    on the third, 00:00:20), with subtitles beside it in talk.srt."""
    path = make_video(folder / "talk.mp4", TALK_SLIDES)
    (folder / "talk.srt").write_text("1\n00:00:05,000 --> 00:00:07,500\nWelcome to the review."
                                     "\n\n2\n00:00:21,000 --> 00:00:23,000\nNote the <i>launch"
                                     "</i> date.\n")
    return path


WORDS = ["river", "harbour", "lantern", "meadow", "copper", "thistle", "granite", "willow",
         "ember", "falcon", "orchard", "quarry", "beacon", "saddle", "timber"]


def prose(i: int, n: int = 60) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + "."


def make_code_repo(root: Path, files: int = 16) -> Path:
    repo = root / "repo"
    (repo / "pkg").mkdir(parents=True)
    for i in range(files):
        body = "\n\n".join(
            f"def step_{i}_{k}(value):\n    \"\"\"{prose(i + k, 12)}\"\"\"\n"
            f"    return value * {k + 2} + {i}\n" for k in range(4))
        (repo / "pkg" / f"mod_{i:02d}.py").write_text(f'"""Module {i}."""\n\nimport math\n\n\n'
                                                      f"{body}\n")
    return repo


MERGES = [b"he", b"ll", b"llo", b"hello", b" w", b"or", b"ld", b" wor", b" world"]


def write_rank_file(path: Path, merges: list[bytes] = MERGES) -> list[bytes]:
    """A small tiktoken rank file shaped like Llama 4's tokenizer.model: bytes, then merges."""
    tokens = [bytes([i]) for i in range(256)] + merges
    lines = [f"{base64.b64encode(t).decode()} {rank}" for rank, t in enumerate(tokens)]
    path.write_text("\n".join(lines) + "\n")
    return tokens


ORDINARY = '''"""Helpers for {pkg}: values, files and functions defined everywhere."""

DEFAULT_TIMEOUT = {n}


def value(x):
    """Return the value of x as defined by the file."""
    return x


def file(path):
    """The file defined at path; its value is read by this function."""
    return open(path)


class Function:
    """A function whose value is defined in a file."""

    def get(self):
        return value(self)
'''


def make_site_corpus(root: Path, packages: int = 40) -> Path:
    """A corpus shaped like the one that broke retrieval at 86M tokens: `packages` folders of
    ordinary code defining `value`, `file`, `Function` (first in corpus order), then the two
    places the questions are about, deep in the last folder."""
    for i in range(packages):
        pkg = root / f"aaa_pkg{i:02d}"
        pkg.mkdir(parents=True)
        for j in range(3):
            (pkg / f"mod{j}.py").write_text(ORDINARY.format(pkg=pkg.name, n=i * 10 + j)
                                            + "\n" * 5 + "# padding\n" * 40)
    deep = root / "zzz_client" / "models" / "vision"
    deep.mkdir(parents=True)
    (deep / "image_processing.py").write_text(
        '"""Image processing for the vision model."""\n\n\n'
        + "# layout helpers\n" * 30
        + "def get_best_fit(image_size, possible_resolutions):\n"
        "    \"\"\"The resolution that holds the image with the least upscaling.\"\"\"\n"
        "    return min(possible_resolutions)\n")
    (root / "zzz_client" / "_constants.py").write_text(
        '"""Constants of the client."""\n\n' + "# tuning notes\n" * 20
        + "DEFAULT_MAX_RETRIES = 2\nINITIAL_RETRY_DELAY = 0.5\n")
    return root


def db_cli(*args: str, home: Path, url: str | None = None, cwd: Path | None = None):
    """`scoutlens ARGS` in its own home, on the database `url` (default: SQLite there)."""
    env = {**os.environ, "COLUMNS": "200", "SCOUTLENS_HOME": str(home)}
    env.pop("SCOUTLENS_DATABASE_URL", None)
    if url is not None:
        env["SCOUTLENS_DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=cwd or REPO)


def one_line_error(proc, *words: str) -> str:
    """The one `error:` line a failed command printed (exit 1, no traceback), holding WORDS."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines()
             if not ln.startswith("using the stored corpus")]  # `ask` says what it asks
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]



def last_line_error(proc, *words: str) -> None:
    """A run that stopped before sending (exit 1, no traceback): its last line is the one
    `error:` line, holding WORDS (progress lines may come before it)."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), proc.stderr

def hello_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(6):
        (root / f"f{i}.txt").write_text(f"file {i} says hello\n" * 200)
    return root


def wide_cli(*args: str) -> subprocess.CompletedProcess:
    """`scoutlens ARGS` from the repository root, 250 columns wide (tables unwrapped)."""
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], env=env,
                          timeout=300)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ui_process(log_path: Path, env: dict[str, str], wait_s: float = 60):
    """A real `scoutlens ui` on a free loopback port, until it answers its health check:
    yields (url, process); stopped afterwards. A server that dies or never answers fails the
    test with its log."""
    import httpx
    import pytest

    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + wait_s
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.3)
        else:
            pytest.fail("the UI did not start: " + log_path.read_text())
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def drawn(lines: list[str], size: tuple[int, int] = (900, 200)):
    """Black words on white (a PIL image), big enough for Tesseract to read every letter."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    for i, line in enumerate(lines):
        draw.text((30, 30 + 70 * i), line, fill="black", font=font)
    return image


def encoded(image, fmt: str, **kw) -> bytes:
    """A PIL image saved in `fmt` (PNG, JPEG, TIFF, ...), as bytes."""
    import io

    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def context_of(corpus: str, *args, **kwargs):
    """build_context over a snapshot of a stored corpus, opened for this one context."""
    from app.services.context import build_context
    from app.services.snapshot import open_snapshot

    with open_snapshot(corpus) as snap:
        return build_context(snap, *args, **kwargs)


def index_of(corpus: str, **kwargs):
    """load_index of a stored corpus's current version, over a snapshot opened for it."""
    from app.services.index import load_index
    from app.services.snapshot import open_snapshot

    with open_snapshot(corpus) as snap:
        return load_index(snap, **kwargs)


def segments_of(corpus: str, ids: list[int]):
    """fetch_segments of a stored corpus, over a snapshot opened for it."""
    from app.services.index import fetch_segments
    from app.services.snapshot import open_snapshot

    with open_snapshot(corpus) as snap:
        return fetch_segments(snap, ids)


def make_contracts(tmp_path: Path, n: int = 24, filler: int = 40, who=None) -> Path:
    """A corpus `contracts` of `n` short supply contracts (party, start date, amount on lines
    2-4, then `filler` clauses), for the analysis tests."""
    from app.services.ingesting import ingest

    src = tmp_path / "contracts"
    src.mkdir()
    for i in range(n):
        (src / f"c{i:02}.txt").write_text(
            f"Supply contract {i}\nParty: Acme {i} Ltd\nStart date: 2024-01-{i + 1:02}\n"
            f"Amount: {1000 + i} EUR\n" + "A clause of no consequence. " * filler + "\n")
    ingest([src], "contracts", who=who)
    return src
