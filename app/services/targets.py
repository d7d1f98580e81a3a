"""What a command's target is: a stored corpus's name or paths on disk, and the corpus a path
goes into."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from app.services.access import CorpusNotFound, Who
from app.services.snapshot import Snapshot, open_snapshot
from ingest.types import IngestError


def looks_like_path(target: str) -> bool:
    """`./x`, `../x`, `/x`, `~`, `.` or anything with a separator: a bare word is a name."""
    seps = [c for c in (os.sep, os.altsep) if c]
    return target in (".", "..") or target.startswith("~") or any(c in target for c in seps)


def corpus_name_for(path: Path) -> str:
    """The corpus a path is ingested into when no name is given: its folder or file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name).strip("-.") or "corpus"


def ingest_target(args: list[str], corpus: str | None = None) -> tuple[str, list[Path]]:
    """(corpus, paths) from `ingest`'s arguments, read as `ask` and `pack` read theirs: with
    `corpus` given every argument is a path; else a first argument that is a bare word (no
    separator, not `.`/`~`) followed by paths is the corpus name; else all are paths and the
    corpus is named after the first."""
    if not args:
        raise IngestError("nothing to ingest: give a corpus name and paths (scoutlens ingest "
                          "NAME PATH...)")
    if corpus is None and len(args) > 1 and not looks_like_path(args[0]):
        corpus, args = args[0], args[1:]
    paths = [Path(a).expanduser() for a in args]
    return corpus or corpus_name_for(paths[0]), paths


def resolve_target(target: str, who: Who = None, note: Callable[[str], None] | None = None,
                   progress=None, corpus_only: bool = False, as_path: bool = False) -> str:
    """The corpus a target names, for a server to refuse a wrong one before a question waits
    for the model (its snapshot is opened at its turn): a path is ingested, a name is
    checked (its row only), as `open_target` does."""
    from app.services.catalog import corpus_exists

    if not corpus_only and (as_path or looks_like_path(target)):
        return _ingested(target, who, note, progress)
    if not corpus_exists(target, who=who):
        raise _missing(target, corpus_only)
    _said_stored(target, note, corpus_only)
    return target


@contextmanager
def open_target(target: str, who: Who = None, note: Callable[[str], None] | None = None,
                progress=None, corpus_only: bool = False,
                as_path: bool = False) -> Iterator[Snapshot]:
    """A snapshot of the corpus a question's target names. A bare word is a stored corpus
    name, even when the working directory has a folder of that name (which would otherwise be
    merged in silently); a path is a path only when it looks like one, or with `as_path`
    (`--path`): it is ingested (incrementally) into a corpus named after it first.
    `corpus_only` (the web UI): never a path, so a corpus named like a folder of the server's
    working directory cannot pull that folder in. `note` is told which of the two was used. A
    corpus `who` may not read is not there."""
    path = not corpus_only and (as_path or looks_like_path(target))
    name = _ingested(target, who, note, progress) if path else target
    with ExitStack() as stack:
        try:
            snap = stack.enter_context(open_snapshot(name, who))
        except CorpusNotFound:
            raise _missing(target, corpus_only) from None
        if not path:
            _said_stored(target, note, corpus_only)
        yield snap


def _missing(target: str, corpus_only: bool) -> IngestError:
    if corpus_only:
        return IngestError(f"no such corpus: {target}")
    here = Path(target).exists()
    hint = f"; ./{target} exists: pass ./{target} or --path to ingest it" if here else ""
    return IngestError(f"no such corpus or path: {target} (scoutlens corpora list shows the "
                       f"corpora){hint}")


def _said_stored(target: str, note: Callable[[str], None] | None, corpus_only: bool) -> None:
    """Tell which was used when a bare word named a stored corpus (and a folder, maybe)."""
    if note and not corpus_only:
        note(f"using the stored corpus {target!r}" + (
            f" (not ./{target}: pass ./{target} or --path to ingest it)"
            if Path(target).exists() else ""))


def _ingested(target: str, who: Who, note: Callable[[str], None] | None, progress) -> str:
    """The corpus a path was just ingested into (incrementally)."""
    from app.services.ingesting import ingest

    path = Path(target).expanduser()
    if not path.exists():
        raise IngestError(f"no such corpus or path: {target} (no such file or folder)")
    name = corpus_name_for(path)
    if note:
        note(f"ingesting {path} into corpus {name!r}")
    ingest([path], name, progress=progress, who=who)
    return name
