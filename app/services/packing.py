"""Pack a stored corpus or paths on disk into a budget, streaming the output to a file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.services.ingest_options import for_corpus
from app.services.tokencache import tokenizer as tokenizer_for
from app.settings import get_settings
from common.files import atomic_open, atomic_write_text
from ingest.counting import count_documents
from ingest.pack import (
    Format,
    Packer,
    PackResult,
    Renderer,
    TocPosition,
    manifest_text,
    stable_order,
)
from ingest.pipeline import PipelineOptions, Progress, run_pipeline
from ingest.statmemo import StatMemo, code_stamp, memo_key
from ingest.types import Document, IngestError, Skipped

if TYPE_CHECKING:  # app.services.access loads SQLAlchemy: only when a corpus is packed
    from app.services.access import Who
    from ingest.tokenizers import Tokenizer


@dataclass
class PackOutcome:
    result: PackResult
    skipped: list[Skipped]
    source: str  # "corpus NAME" or the paths packed
    out: str | None
    recalled: int = 0  # files the stat memo gave back unread


def _order_file(roots: list[str]) -> Path:
    key = hashlib.sha256("\0".join(sorted(roots)).encode()).hexdigest()[:16]
    return get_settings().cache_dir / "pack-order" / f"{key}.json"


def _previous_order(path: Path) -> list[tuple[str, str]]:
    try:
        return [tuple(x) for x in json.loads(path.read_text())]  # type: ignore[misc]
    except (OSError, ValueError, TypeError):
        return []


def _save_order(path: Path, docs: list[Document]) -> None:
    with contextlib.suppress(OSError):  # only the order's stability across re-packs is lost
        atomic_write_text(path, json.dumps([[d.path, d.sha256] for d in docs]))


@dataclass
class Resident:
    """What a process that packs the same paths again and again (`pack --watch`) keeps between
    its packs: the tokenizers it built (o200k's counter takes 0.1 s to build), the last pack's
    stat memo, in memory and decoded (loading and decoding the standard library's took ~0.15
    s), and the wrappers' counts. A pack that fails leaves the memo as it was."""

    tokenizers: dict[str, Tokenizer] = field(default_factory=dict)
    memo: StatMemo | None = None
    #: per tokenizer, the wrapper and manifest lines' counts (ingest.pack.Packer's `counts`)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def release(self, old: Path) -> None:
        """Remove the pack a new one replaced on a thread of its own (common.files.atomic_open):
        freeing 36 MB took 25 ms of each re-pack. Not a daemon: the process waits for it."""
        threading.Thread(target=_remove, args=(old,), name="scoutlens-release").start()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _tokenizer(spec: str, resident: Resident | None) -> Tokenizer:
    if resident is None:
        return tokenizer_for(spec)
    if spec not in resident.tokenizers:
        resident.tokenizers[spec] = tokenizer_for(spec)
    return resident.tokenizers[spec]


def _memo(paths: list[Path], options: PipelineOptions, tokenizer: str,
          resident: Resident | None = None) -> StatMemo | None:
    """The stat memo of a pack of these paths with these options and tokenizer (none when
    pictures are kept as image files: those files are not in the memo)."""
    process = options.process
    if process.vision:
        return None
    import ingest

    fingerprint = (sorted(str(p.expanduser().resolve()) for p in paths), options.collect,
                   replace(process, noise=None), process.noise.options, tokenizer,
                   code_stamp(Path(ingest.__file__).parent))
    path = get_settings().cache_dir / "pack-memo" / f"{memo_key(*fingerprint)}.memo"
    held = resident.memo if resident is not None else None
    return held.again() if held is not None and held.path == path else StatMemo(path)


def _is_corpus(name: str, who: Who) -> bool:
    from app.services.catalog import corpus_exists  # imports SQLAlchemy: only when needed

    return corpus_exists(name, who=who)


@dataclass(frozen=True)
class PackInput:
    """What to pack and how, as the CLI and the MCP tool hand it in. `target`: one stored
    corpus's name, or paths; `out`: a file (written atomically), or stdout when None or "-";
    `corpus_only` (a shared server): the target is one corpus name and nothing on disk is
    looked at, so a corpus named like a server path neither pulls it in nor tells whether it
    exists."""

    target: list[str]
    tokenizer: str | None = None
    budget: int | None = None
    fmt: Format = "xml"
    fit: bool = False
    out: str | None = None
    manifest: str | None = None
    toc: TocPosition = "top"
    options: PipelineOptions | None = None
    corpus_only: bool = False


def pack(job: PackInput, progress: Progress | None = None,
         note: Callable[[str], None] | None = None, who: Who = None,
         resident: Resident | None = None) -> PackOutcome:
    """Pack a corpus `who` may read, or paths, as `job` says; with `resident`, what the last
    pack of this process built is used and what this one builds is kept there."""
    target, tokenizer, budget, fmt, fit = job.target, job.tokenizer, job.budget, job.fmt, job.fit
    out, manifest, toc, options = job.out, job.manifest, job.toc, job.options
    corpus_only = job.corpus_only
    if not target:
        raise IngestError("nothing to pack: give a corpus name or a path")
    from app.services.tokencache import token_cache

    skipped: list[Skipped] = []
    memo: StatMemo | None = None
    if corpus_only and (len(target) != 1 or not _is_corpus(target[0], who)):
        raise IngestError(f"no such corpus: {target[0]} (list_corpora shows them)")
    if corpus_only or (len(target) == 1 and not Path(target[0]).exists()
                       and _is_corpus(target[0], who)):
        from app.services.snapshot import load_documents

        stored_spec, docs = load_documents(target[0], symbols=fit, who=who)
        # the folders it was ingested from: an output there joins the corpus at its next ingest
        check_outputs(sorted({Path(d.root) for d in docs if d.root}), out, manifest)
        tok = _tokenizer(tokenizer or stored_spec, resident)
        if tok.spec != stored_spec:  # counts are per tokenizer: recount (cached)
            docs = count_documents(docs, tok, token_cache(tok.fingerprint))
        name, source = target[0], f"corpus {target[0]}"
    else:
        paths = [Path(t) for t in target]
        check_outputs(paths, out, manifest)
        tok = _tokenizer(tokenizer or get_settings().tokenizer, resident)
        base = for_corpus(options, tok.spec)
        options = PipelineOptions(base.collect, replace(
            base.process, segments=False, symbols=False, injections=False), base.workers)
        kwargs = {"progress": progress} if progress else {}
        memo = _memo(paths, options, tok.fingerprint, resident)
        result = run_pipeline(paths, tok, options, None, token_cache(tok.fingerprint),
                              memo=memo, **kwargs)
        skipped = result.skipped
        order_file = _order_file(result.roots)
        docs = stable_order(result.documents, _previous_order(order_file))
        _save_order(order_file, docs)
        name = Path(target[0]).expanduser().resolve().name if len(target) == 1 else "corpus"
        source = ", ".join(target)
    if not docs:
        why = "; ".join(f"{k.path}: {k.reason}" for k in skipped[:3])
        raise IngestError(f"nothing to pack: no readable sources in {source}"
                          + (f" ({len(skipped)} skipped: {why})" if skipped else ""))
    packer = Packer(tok, fmt, name, toc, counts=(
        resident.counts.get(tok.fingerprint, {}) if resident is not None else None))
    planned = packer.plan(docs, budget, fit, note)
    if resident is not None and packer.used_counts is not None:
        resident.counts[tok.fingerprint] = packer.used_counts
    _write(packer, planned, out, resident.release if resident is not None else None)
    if manifest:
        _atomic_write(Path(manifest), manifest_text({"source": source,
                                                     **planned.manifest_json()}))
    if memo is not None:
        memo.save()  # only after a pack that was written: a failed one leaves the last memo
        if resident is not None:
            resident.memo = memo.successor()
    return PackOutcome(planned, skipped, source, out, memo.recalled if memo else 0)


def is_pack_output(path: Path) -> bool:
    """Whether `path` is a regular file that starts with a pack's header (scoutlens wrote it),
    read no further than the header: what an agent may overwrite with a new pack."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return any(_has_header(head, fmt) for fmt in ("xml", "markdown"))


def _has_header(head: str, fmt: Format) -> bool:
    """The header's first line up to the corpus name, then its note lines, as Renderer writes."""
    first, *rest = Renderer(fmt).header("\0").rstrip("\n").split("\n")
    lead = first[:first.index("\0")].rstrip('"')
    lines = head.split("\n")
    return (len(lines) > len(rest) and lines[0].startswith(lead)
            and lines[1:1 + len(rest)] == rest)


def _resolved(flag: str, value: str) -> Path:
    try:
        return Path(value).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise IngestError(f"cannot write {flag} {value}: {exc}") from None


def check_outputs(inputs: list[Path], out: str | None, manifest: str | None) -> None:
    """Refuse an output that would overwrite an input, or land inside an input folder (the
    next pack of that folder would then include the previous output)."""
    outputs = {flag: _resolved(flag, value) for flag, value in
               (("--out", out), ("--manifest", manifest)) if value not in (None, "-")}
    if len(set(outputs.values())) < len(outputs):
        raise IngestError("--out and --manifest are the same file: give two different paths")
    for flag, target in outputs.items():
        for given in inputs:
            source = given.expanduser().resolve()
            if target == source:
                raise IngestError(f"refusing to write {flag} {target}: it is an input of "
                                  "this pack and would be overwritten")
            if source.is_dir() and target.is_relative_to(source):
                raise IngestError(f"refusing to write {flag} {target}: it lies inside the "
                                  f"input folder {source}, so the next pack would include it")


def _atomic_write(path: Path, text: str) -> None:
    if path.is_dir():
        raise IngestError(f"--manifest is a folder: {path}")
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise IngestError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write(packer: Packer, planned: PackResult, out: str | None,
           release: Callable[[Path], None] | None = None) -> None:
    if out in (None, "-"):
        packer.write(planned, sys.stdout)
        sys.stdout.flush()
        return
    path = Path(out)  # type: ignore[arg-type]
    if path.is_dir():
        raise IngestError(f"--out is a folder: {path}")
    try:
        with atomic_open(path, "w", buffering=1 << 20, release=release) as fh:
            packer.write(planned, fh)
    except OSError as exc:
        raise IngestError(f"cannot write {path}: {exc.strerror or exc}") from None
