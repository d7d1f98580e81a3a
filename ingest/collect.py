"""Collect: turn the user's inputs (folders, git repositories, files, archives) into candidates.

In a git work tree, git decides what belongs (tracked + untracked-not-ignored, so every
`.gitignore` level and `.git/info/exclude` count exactly as git counts them). Elsewhere the
`.gitignore` files found while walking are honoured with pathspec's gitignore semantics.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from ingest.archives import ArchiveLimits, extract_archive, is_archive
from ingest.filters import VENDORED_DIRS
from ingest.types import Candidate, IngestError, Skipped


@dataclass
class Collected:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "repo: using git's file list"


@dataclass(frozen=True)
class CollectOptions:
    gitignore: bool = True
    skip_vendored_dirs: bool = True  # do not even descend into node_modules & co
    archive_limits: ArchiveLimits = ArchiveLimits()


def _git_files(folder: Path) -> list[str] | None:
    """Files git sees under folder (relative posix paths), or None when it is not a repo."""
    if shutil.which("git") is None:
        return None
    try:
        inside = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--is-inside-work-tree"],
            capture_output=True, text=True, timeout=30,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        # a folder that its enclosing repository ignores (e.g. pyenv's versions/) is not
        # that repository's content: walk it as a plain folder
        ignored = subprocess.run(["git", "-C", str(folder), "check-ignore", "-q", "."],
                                 capture_output=True, timeout=30)
        if ignored.returncode == 0:
            return None
        out = subprocess.run(
            ["git", "-C", str(folder), "-c", "core.quotepath=off", "ls-files", "-co",
             "--exclude-standard", "-z", "--", "."],
            capture_output=True, timeout=300, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [n for n in out.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return sorted(set(names))


def _walk(folder: Path, options: CollectOptions, vendored: list[str]) -> Iterator[str]:
    """Relative posix paths under folder, honouring .gitignore files at every level; vendored
    folders left out are appended to `vendored`."""
    specs: list[tuple[str, pathspec.PathSpec]] = []  # (dir prefix, spec) from enclosing levels
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        rel_dir = os.path.relpath(dirpath, folder).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        specs = [(p, s) for p, s in specs if rel_dir.startswith(p)]
        if options.gitignore and ".gitignore" in filenames:
            try:
                lines = (Path(dirpath) / ".gitignore").read_text("utf-8", "replace").splitlines()
                specs.append((rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))
            except OSError:
                pass

        def ignored(rel: str, is_dir: bool, specs=specs) -> bool:
            # as git: the deepest .gitignore that says anything about the path decides
            for prefix, spec in reversed(specs):
                sub = rel[len(prefix):] + ("/" if is_dir else "")
                verdict = spec.check_file(sub).include
                if verdict is not None:
                    return verdict
            return False

        keep = []
        for d in sorted(dirnames):
            if d == ".git":
                continue
            if options.skip_vendored_dirs and d in VENDORED_DIRS:
                if not ignored(rel_dir + d, True):
                    vendored.append(rel_dir + d + "/")
                continue
            if not ignored(rel_dir + d, True):
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = rel_dir + name
            if not ignored(rel, False):
                yield rel


def _candidate(location: Path, shown: str, root: str, out: Collected,
               inside: Path | None = None) -> None:
    """One file; a symlink is followed only to a file inside `inside` (the input folder), so a
    link such as notes.txt -> ~/.aws/credentials never leaks into a pack."""
    try:
        st = os.lstat(location)
    except OSError as exc:
        out.skipped.append(Skipped(shown, root, 0, "error", f"unreadable: {exc.strerror}"))
        return
    if os.path.islink(location):
        try:
            target = location.resolve(strict=True)
        except (OSError, RuntimeError):
            out.skipped.append(Skipped(shown, root, 0, "skipped", "symlink: broken or a loop"))
            return
        if not target.is_file():
            out.skipped.append(Skipped(shown, root, 0, "skipped", "symlink: not a file"))
            return
        if inside is not None and not target.is_relative_to(inside):
            out.skipped.append(Skipped(shown, root, 0, "skipped",
                                       "symlink: points outside the input folder"))
            return
        st = target.stat()
    elif not os.path.isfile(location):
        out.skipped.append(Skipped(shown, root, 0, "skipped", "not a regular file"))
        return
    out.candidates.append(Candidate(shown, location, root, st.st_size))


def _collect_folder(folder: Path, prefix: str, root: str, options: CollectOptions,
                    out: Collected) -> None:
    names = _git_files(folder) if options.gitignore else None
    vendored: dict[str, int] = {}
    if names is not None:
        out.notes.append(f"{folder}: git repository, using git's file list ({len(names)} files)")
        if options.skip_vendored_dirs:
            kept = []
            for n in names:
                parts = n.split("/")[:-1]
                hit = next((i for i, p in enumerate(parts) if p in VENDORED_DIRS), None)
                if hit is None:
                    kept.append(n)
                else:
                    key = "/".join(parts[:hit + 1]) + "/"
                    vendored[key] = vendored.get(key, 0) + 1
            names = kept
    else:
        found: list[str] = []
        names = list(_walk(folder, options, found))
        vendored = dict.fromkeys(found, 0)
    for folder_name, count in sorted(vendored.items()):
        files = f" ({count:,} file{'' if count == 1 else 's'})" if count else ""
        out.skipped.append(Skipped(prefix + folder_name, root, 0, "skipped",
                                   f"vendored: folder left out{files}"))
    inside = folder.resolve()
    for name in names:
        _candidate(folder / name, prefix + name, root, out, inside)


@contextmanager
def collect(inputs: list[Path], options: CollectOptions = CollectOptions(),
            workdir: Path | None = None) -> Iterator[Collected]:
    """Collect candidates from inputs; archives are extracted into a temporary folder that
    lives as long as the context (the candidates point into it)."""
    if not inputs:
        raise IngestError("no input given")
    inputs = [p.expanduser() for p in inputs]
    missing = [str(p) for p in inputs if not p.exists() and not p.is_symlink()]
    if missing:
        raise IngestError(f"path not found: {', '.join(missing)}")
    out = Collected()
    unique: dict[Path, Path] = {}
    for p in inputs:  # the same input twice is one input
        unique.setdefault(p.resolve(), p)
    inputs = list(unique.values())
    multi = len(inputs) > 1
    used: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="scoutlens-", dir=workdir) as tmp:
        for i, path in enumerate(inputs):
            root = str(path.resolve())
            prefix = _unique_prefix(path.resolve().name, used) if multi else ""
            if path.is_dir():
                _collect_folder(path, prefix, root, options, out)
            elif is_archive(path):
                dest = Path(tmp) / f"archive-{i}"
                try:
                    extracted = extract_archive(path, dest, options.archive_limits)
                except IngestError as exc:
                    out.skipped.append(Skipped(path.name, root, path.stat().st_size, "error",
                                               str(exc)))
                    continue
                for name, reason in extracted.refused:
                    out.skipped.append(Skipped(prefix + name, root, 0, "skipped",
                                               f"archive member refused: {reason}"))
                _collect_folder(extracted.root, prefix, root, options, out)
                out.notes.append(f"{path.name}: archive extracted safely")
            else:
                _candidate(path, prefix.rstrip("/") if multi else path.name, root, out)
        yield out


def _unique_prefix(name: str, used: set[str]) -> str:
    """`src/`, then `src-2/`, ... so two inputs with one name never share paths."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate + "/"
