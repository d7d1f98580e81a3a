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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISLNK, S_ISREG

import pathspec

from ingest.archives import ArchiveLimits, extract_archive, is_archive
from ingest.filters import VENDORED_DIRS
from ingest.statmemo import stamp
from ingest.types import Candidate, IngestError, Skipped


class Candidates:
    """The files found, kept compact until each is read: a tuple per file, its location left
    out when it is the root joined with its path (a Candidate with its Path took ~560 bytes:
    0.56 GB for a million files before any was read). Read back as Candidates; a file set to
    None once read is let go."""

    def __init__(self) -> None:
        self._rows: list[tuple | None] = []  # path, location or None, root, size, flags[, stamp]

    def append(self, cand: Candidate) -> None:
        where: str | None = str(cand.location)
        if where == os.path.join(cand.root, cand.path):
            where = None
        row = (cand.path, where, cand.root, cand.size, cand.flags)
        self._rows.append(row if cand.stamp is None else (*row, cand.stamp))

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Candidate:
        row = self._rows[i]
        if row is None:
            raise LookupError(f"candidate {i} was let go once read")
        path, where, root, size, flags = row[:5]
        return Candidate(path, Path(where if where is not None else os.path.join(root, path)),
                         root, size, flags, row[5] if len(row) > 5 else None)

    def __setitem__(self, i: int, value: None) -> None:
        if value is not None:
            raise TypeError("a candidate can only be let go (set to None)")
        self._rows[i] = None

    def __iter__(self) -> Iterator[Candidate]:
        for i in range(len(self._rows)):
            yield self[i]

    def stamped(self, i: int) -> tuple[str, str, tuple[int, ...] | None]:
        """Candidate i's (path, location, stamp), without building its Path."""
        row = self._rows[i]
        if row is None:
            raise LookupError(f"candidate {i} was let go once read")
        where = row[1] if row[1] is not None else os.path.join(row[2], row[0])
        return row[0], where, row[5] if len(row) > 5 else None

    def shown(self, i: int) -> tuple[str, str, tuple[str, ...]]:
        """Candidate i's (path, root, flags), without building its Path."""
        row = self._rows[i]
        if row is None:
            raise LookupError(f"candidate {i} was let go once read")
        return row[0], row[2], row[4]

    def paths(self) -> Iterator[str]:
        """Each file's path, without building its Candidate (a million cost next to nothing)."""
        return (row[0] for row in self._rows if row is not None)

    def roots(self) -> set[str]:
        return {row[2] for row in self._rows if row is not None}


@dataclass
class Collected:
    candidates: Candidates = field(default_factory=Candidates)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "repo: using git's file list"
    stamps: bool = False  # keep each file's stamp (ingest/statmemo), as a pack with a memo asks


GIT_METADATA = "git metadata: left out (git never runs on it)"


@dataclass(frozen=True)
class CollectOptions:
    gitignore: bool = True
    skip_vendored_dirs: bool = True  # do not even descend into node_modules & co
    archive_limits: ArchiveLimits = ArchiveLimits()
    # where archives are extracted (None: the system's temp folder); leftovers of killed runs
    # are swept from here at the next start
    workdir: Path | None = None


# Git is trusted only with a repository the user points at, and even there it may only list
# files: every setting that makes git start a program is switched off on the command line
# (which outranks the repository's own .git/config), no system or global config is read, and
# nothing may prompt, page or write the index. Folders from archives and uploads never see git.
_GIT_SAFE_CONFIG = (
    "core.fsmonitor=false", "core.hooksPath=/dev/null", "core.pager=cat", "core.editor=true",
    "core.askPass=", "core.sshCommand=", "core.gitProxy=", "core.alternateRefsCommand=",
    "core.untrackedCache=false", "core.quotepath=off", "diff.external=", "credential.helper=",
    "gpg.program=", "sequence.editor=true", "protocol.allow=never", "submodule.recurse=false",
    "uploadpack.packObjectsHook=",
    # nor the global excludes file git reads by default (~/.config/git/ignore): a `*` there
    # made every repository look ignored by itself. The repository's own rules decide.
    "core.excludesFile=/dev/null",
)
# Environment variables through which git could be told to run something or read other config.
_GIT_ENV_DROP = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR",
    "GIT_ASKPASS", "SSH_ASKPASS", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_PROXY_COMMAND",
    "GIT_EXEC_PATH", "GIT_TRACE", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "PAGER", "EDITOR", "VISUAL",
)


def git_command(folder: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment for a read-only git command that cannot execute anything."""
    env = {k: v for k, v in os.environ.items()
           if k not in _GIT_ENV_DROP and not k.startswith("GIT_CONFIG_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               GIT_OPTIONAL_LOCKS="0", GIT_PAGER="cat", GIT_ATTR_NOSYSTEM="1", LC_ALL="C")
    argv = ["git", "--no-pager", "--no-optional-locks"]
    for item in _GIT_SAFE_CONFIG:
        argv += ["-c", item]
    return [*argv, "-C", str(folder), *args], env


def _git(folder: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    argv, env = git_command(folder, *args)
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def _git_files(folder: Path) -> list[str] | None:
    """Files git sees under folder (relative posix paths), or None when it is not a repo."""
    if shutil.which("git") is None:
        return None
    try:
        inside = _git(folder, "rev-parse", "--is-inside-work-tree")
        if inside.returncode != 0 or inside.stdout.strip() != b"true":
            return None
        # a folder that its enclosing repository ignores (e.g. pyenv's versions/) is not
        # that repository's content: walk it as a plain folder
        if _git(folder, "check-ignore", "-q", ".").returncode == 0:
            return None
        out = _git(folder, "ls-files", "-co", "--exclude-standard", "-z", "--", ".",
                   timeout=300)
        if out.returncode != 0:
            return None
    except (OSError, subprocess.SubprocessError):
        return None
    names = [n for n in out.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return sorted(set(names))


def _tree(folder: Path, onerror: Callable[[OSError], None]
          ) -> Iterator[tuple[str, str, list[str], list[str]]]:
    """os.walk without recursion (3.11's recurses per level, so a folder 1,500 levels deep, easy
    to put in an archive, is a RecursionError): (path, "rel/" prefix, dirs, files), top-down,
    and the caller may prune `dirs` in place as with os.walk."""
    stack: list[tuple[str, str]] = [(str(folder), "")]
    while stack:
        dirpath, rel_dir = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(dirpath) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(entry.name)
        except OSError as exc:
            onerror(exc)
            continue
        yield dirpath, rel_dir, dirs, files
        for d in sorted(dirs, reverse=True):
            stack.append((os.path.join(dirpath, d), rel_dir + d + "/"))


def _walk(folder: Path, options: CollectOptions, vendored: list[str],
          left_out: list[tuple[str, str, str]]) -> Iterator[str]:
    """Relative posix paths under folder, honouring .gitignore files at every level; vendored
    folders left out are appended to `vendored`, anything else not walked (git metadata,
    unreadable folders, folder symlinks) to `left_out` as (path, status, reason)."""
    specs: list[tuple[str, pathspec.PathSpec]] = []  # (dir prefix, spec) from enclosing levels
    inside = folder.resolve()

    def unreadable(exc: OSError) -> None:
        rel = os.path.relpath(exc.filename or folder, folder).replace(os.sep, "/")
        left_out.append((rel + "/", "error", f"unreadable folder: {exc.strerror or exc}"))

    for dirpath, rel_dir, dirnames, filenames in _tree(folder, unreadable):
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
                left_out.append((rel_dir + d + "/", "skipped", GIT_METADATA))
                continue
            if ignored(rel_dir + d, True):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                target = Path(dirpath, d).resolve()
                where = "inside" if target.is_relative_to(inside) else "outside"
                left_out.append((rel_dir + d + "/", "skipped",
                                 f"symlink: a folder {where} the input, not followed"))
                continue
            if options.skip_vendored_dirs and d in VENDORED_DIRS:
                vendored.append(rel_dir + d + "/")
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = rel_dir + name
            if name == ".git":  # a worktree's pointer to its repository
                left_out.append((rel, "skipped", GIT_METADATA))
            elif not ignored(rel, False):
                yield rel


def shown_name(name: str) -> tuple[str, list[str]]:
    """A path as users see it: bytes that are not UTF-8 and control characters (newline, ESC,
    CR, ...) written as escapes, so one line of a report or manifest stays one line; plus the
    flags saying so. The file itself is still read from its real name."""
    if name.isascii() and name.isprintable():  # nearly every name: nothing to write out
        return name, []
    flags: list[str] = []
    if any("\udc80" <= ch <= "\udcff" for ch in name):
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        flags.append("name:not-utf8")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0x80 <= ord(ch) < 0xA0 for ch in name):
        name = "".join(ch.encode("unicode_escape").decode("ascii")
                       if ord(ch) < 32 or ord(ch) == 127 or 0x80 <= ord(ch) < 0xA0 else ch
                       for ch in name)
        flags.append("name:control-characters")
    return name, flags


def _candidate(location: Path, shown: str, root: str, out: Collected,
               inside: Path | None = None, flags: list[str] | None = None,
               trusted: bool = True) -> None:
    """One file; a symlink is followed only to a file inside `inside` (the input folder), so a
    link such as notes.txt -> ~/.aws/credentials never leaks into a pack. A file the user
    pointed at (`trusted`: not an archive's member, re-extracted on every run) keeps its stamp."""
    try:
        st = os.lstat(location)
    except OSError as exc:
        out.skipped.append(Skipped(shown, root, 0, "error", f"unreadable: {exc.strerror}"))
        return
    if S_ISLNK(st.st_mode):
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
    elif not S_ISREG(st.st_mode):
        out.skipped.append(Skipped(shown, root, 0, "skipped", "not a regular file"))
        return
    out.candidates.append(Candidate(shown, location, root, st.st_size, tuple(flags or ()),
                                    stamp(st) if trusted and out.stamps else None))


def _collect_folder(folder: Path, prefix: str, root: str, options: CollectOptions,
                    out: Collected, trusted: bool = True) -> None:
    """Candidates under folder. Only a trusted folder (one the user pointed at) may be listed
    by git; an extracted archive is walked as a plain folder."""
    names = _git_files(folder) if options.gitignore and trusted else None
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
        left_out: list[tuple[str, str, str]] = []
        names = list(_walk(folder, options, found, left_out))
        vendored = dict.fromkeys(found, 0)
        for rel, status, reason in left_out:
            out.skipped.append(Skipped(prefix + shown_name(rel)[0], root, 0, status, reason))
    for folder_name, count in sorted(vendored.items()):
        files = f" ({count:,} file{'' if count == 1 else 's'})" if count else ""
        out.skipped.append(Skipped(prefix + folder_name, root, 0, "skipped",
                                   f"vendored: folder left out{files}"))
    inside = folder.resolve()
    for name in names:
        shown, flags = shown_name(name)
        _candidate(folder / name, prefix + shown, root, out, inside, flags, trusted)


_WORK_PREFIX = "scoutlens-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def sweep_workdir(workdir: Path) -> list[Path]:
    """Remove extraction folders left by runs that were killed (their pid is gone)."""
    removed = []
    try:
        entries = list(workdir.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(_WORK_PREFIX):].split("-", 1)[0]
        if (entry.name.startswith(_WORK_PREFIX) and pid.isdigit() and int(pid) != os.getpid()
                and not _alive(int(pid)) and entry.is_dir() and not entry.is_symlink()):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def _workspace(workdir: Path | None) -> Iterator[str]:
    """A private folder for extracted archives, named after this process so that a later run
    can tell a killed run's leftovers from a live one's."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        sweep_workdir(workdir)
    prefix = f"{_WORK_PREFIX}{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workdir) as tmp:
        yield tmp


@contextmanager
def collect(inputs: list[Path], options: CollectOptions = CollectOptions(),
            stamps: bool = False) -> Iterator[Collected]:
    """Collect candidates from inputs; archives are extracted into a temporary folder that
    lives as long as the context (the candidates point into it). With `stamps`, each file the
    user pointed at keeps its stamp."""
    if not inputs:
        raise IngestError("no input given")
    inputs = [p.expanduser() for p in inputs]
    missing = [str(p) for p in inputs if not p.exists() and not p.is_symlink()]
    if missing:
        raise IngestError(f"path not found: {', '.join(missing)}")
    out = Collected(stamps=stamps)
    unique: dict[Path, Path] = {}
    for p in inputs:  # the same input twice is one input
        unique.setdefault(p.resolve(), p)
    inputs = list(unique.values())
    multi = len(inputs) > 1
    used: set[str] = set()
    with _workspace(options.workdir) as tmp:
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
                    out.skipped.append(Skipped(prefix + shown_name(name)[0], root, 0, "skipped",
                                               f"archive member refused: {reason}"))
                if extracted.duplicates:  # never a second row for one path
                    names = ", ".join(shown_name(n)[0] for n in extracted.duplicates[:5])
                    more = len(extracted.duplicates) - 5
                    out.notes.append(f"{path.name}: duplicate member name, later member "
                                     f"skipped: {names}" + (f" and {more:,} more" if more > 0
                                                            else ""))
                _collect_folder(extracted.root, prefix, root, options, out, trusted=False)
                out.notes.append(f"{path.name}: archive extracted safely")
            else:
                shown, flags = shown_name(prefix.rstrip("/") if multi else path.name)
                _candidate(path, shown, root, out, None, flags)
        yield out


def _unique_prefix(name: str, used: set[str]) -> str:
    """`src/`, then `src-2/`, ... so two inputs with one name never share paths."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate + "/"
