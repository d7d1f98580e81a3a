"""The tools: each one calls its service (the same the CLI and the UI call) and shapes the
outcome as JSON for a client. Synchronous, run in a worker thread by the server; a refusal is
the service's own UserError, whose one line the client sees as the tool's error."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.mcp.schemas import (
    AnalysesArgs,
    AnalyzeArgs,
    AskArgs,
    IngestArgs,
    ListCorporaArgs,
    PackArgs,
    ReadSourceArgs,
    SearchArgs,
)
from app.servers.runtime import Runtime
from app.services.access import Who
from common.errors import UserError

Progress = Callable[[str, int, int, str], None]
MAX_LINES = 2_000  # lines read_source returns at once
MAX_INLINE_CHARS = 4_000_000  # packed text returned in the result; larger goes to a file
LISTED_FILES = 50  # files an ingest result names (the summary counts them all)
#: tokenizers any caller may name: the bundled ones, no file of the caller's choosing
#: what an agent's `out` may end in (scoutlens writes XML or Markdown text)
PACK_SUFFIXES = (".xml", ".md", ".markdown", ".txt")
BUILT_IN_TOKENIZERS = ("cl100k", "o200k", "embedded", "cl100k_base", "o200k_base")
log = logging.getLogger("scoutlens.mcp")


def _refuse_local(rt: Runtime, what: str) -> None:
    if rt.shared:
        raise UserError(f"{what} is off on a shared server (it would read or write the server's "
                        "own disk); run `scoutlens mcp` on your machine for that")


def list_corpora(args: ListCorporaArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    from app.services.catalog import list_corpora as rows

    return {"corpora": [{"name": c.name, "sources": c.sources, "skipped": c.skipped,
                         "tokens": c.tokens, "tokenizer": shown_tokenizer(c.tokenizer, rt),
                         "owner": c.owner,
                         "shared_with": c.shared, "updated_at": c.updated_at}
                        for c in rows(who=who)]}


def ingest(args: IngestArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    _refuse_local(rt, "ingesting a path")
    from app.services.ingesting import ingest as run
    from app.services.targets import corpus_name_for, ingest_target

    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    if missing:
        raise UserError(f"no such file or folder: {missing[0]}")
    # every argument is a path: the corpus is named, or named after the first path
    corpus, paths = ingest_target(
        args.paths, args.corpus or corpus_name_for(Path(args.paths[0]).expanduser()))
    report = run(paths, corpus, args.tokenizer, progress=progress, who=who).to_json()
    changed = [f for f in report["files"] if f["status"] != "unchanged"]
    return {key: report[key] for key in ("corpus", "tokenizer", "created", "total_tokens",
                                         "summary", "notes", "seconds")} | {
        "files": changed[:LISTED_FILES],
        **({"files_left_out": len(changed) - LISTED_FILES}
           if len(changed) > LISTED_FILES else {})}


def search(args: SearchArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    from app.services.search import search as run

    ranking = run(args.corpus, args.query, k=args.k, who=who, progress=progress)
    return {"corpus": args.corpus, "query": args.query, "notes": ranking.notes,
            "scope": ranking.scope, "hits": [h.to_json() for h in ranking.hits]}


def read_source(args: ReadSourceArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    from app.services.viewing import source_view

    view = source_view(args.corpus, args.path, who=who)
    head = {"corpus": args.corpus, "path": view.path, "kind": view.kind}
    pages = [p.start for p in view.parts if p.kind == "page"]
    frames = [p for p in view.parts if p.kind == "time"]
    if args.page is not None or (pages and args.second is None):
        number = args.page or pages[0]
        part = view.page(number)
        if part is None:
            raise UserError(f"{view.path} has no page {number}" + (
                f" (pages {pages[0]}-{pages[-1]})" if pages else " (it is not a PDF)"))
        return head | {"page": number, "pages": len(pages), "text": part.text}
    if args.second is not None or frames:
        if not frames:
            raise UserError(f"{view.path} is not a video: give start_line/end_line")
        at = (args.second or 0) * 1000
        part = next((f for f in reversed(frames) if (f.start or 0) <= at), frames[0])
        return head | {"second": (part.start or 0) / 1000, "frames": len(frames),
                       "text": part.text}
    lines = view.lines()
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the file starts no line
    start = args.start_line or 1
    end = args.end_line or start + 199
    if end < start:
        raise UserError(f"end_line {end} is before start_line {start}")
    if start > len(lines):
        raise UserError(f"{view.path} has {len(lines)} lines; start_line {start} is past its end")
    end = min(end, len(lines), start + MAX_LINES - 1)
    width = len(str(end))
    text = "\n".join(f"{n:>{width}}  {lines[n - 1]}" for n in range(start, end + 1))
    return head | {"lines": [start, end], "total_lines": len(lines), "text": text}


def pack(args: PackArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    from app.services.packing import PackInput
    from app.services.packing import pack as run
    from app.settings import get_settings
    from ingest.pack import parse_budget

    budget = parse_budget(args.budget) if args.budget is not None else None
    spec = tokenizer_spec(args.tokenizer, rt)
    if rt.shared:
        _shared_pack_target(args, rt, who)
        spec = spec or _stored_tokenizer_loads(args.target[0])
    out = writable_out(args.out) if args.out is not None else None
    notes: list[str] = []
    temp = None
    if out is None:  # the service writes a file or stdout, and stdout is the protocol here
        folder = get_settings().home_dir / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f"mcp-pack-{uuid.uuid4().hex}.txt"
    try:
        job = PackInput(args.target, spec, budget, args.format, args.fit, str(out or temp),
                        corpus_only=rt.shared)
        outcome = run(job, progress, notes.append, who, resident=rt.resident())
        r = outcome.result
        summary: dict[str, Any] = {
            "source": outcome.source, "tokenizer": shown_tokenizer(r.tokenizer, rt),
            "total_tokens": r.total_tokens, "budget": r.budget, "format": r.format,
            "sources": len(r.blocks), "reduced": r.reduced, "dropped": r.dropped,
            "skipped": len(outcome.skipped), "notes": notes, "pictures": r.pictures()}
        if temp is None:
            return summary | {"out": str(out)}
        size = temp.stat().st_size
        if size > MAX_INLINE_CHARS:
            raise UserError(f"the packed text is {size:,} bytes ({r.total_tokens:,} tokens), "
                            f"too long to return ({MAX_INLINE_CHARS:,} at most): give `out` "
                            "to write it to a file, or a smaller budget with fit")
        return summary | {"text": temp.read_text(encoding="utf-8")}
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def _shared_pack_target(args: PackArgs, rt: Runtime, who: Who) -> None:
    """A shared server packs one corpus the caller may read; the target is never looked up
    on disk (a stat would tell whether a server path exists), nor is `out` written."""
    from app.services.catalog import corpus_exists

    if len(args.target) != 1 or not corpus_exists(args.target[0], who=who):
        raise UserError("a shared server packs one stored corpus name (list_corpora shows "
                        "them); packing the server's paths is off")
    if args.out is not None:
        _refuse_local(rt, "writing a file (out)")


def _stored_tokenizer_loads(corpus: str) -> str:
    """A corpus's own tokenizer spec, loaded here so that a shared caller's refusal never
    carries the path of the operator's tokenizer file (the server's log does)."""
    from app.services.snapshot import open_snapshot
    from app.services.tokencache import tokenizer as load

    with open_snapshot(corpus) as snap:
        spec = snap.tokenizer
    try:
        load(spec)
    except UserError as exc:
        log.warning("corpus %s: tokenizer %s does not load: %s", corpus, spec, exc)
        raise UserError(f"the tokenizer of corpus {corpus} does not load on this server "
                        "(the operator's log says why)") from None
    return spec


def tokenizer_spec(given: str | None, rt: Runtime) -> str | None:
    """The spec a caller's `tokenizer` stands for. A shared server takes a built-in name or
    one the operator named (settings.shared_tokenizers), judged on the text alone: any other
    value, a path above all, is one refusal whether or not such a file exists, and nothing is
    read. The operator's own client may give any spec (the loader caps a file's size)."""
    if given is None or not rt.shared:
        return given
    from app.settings import get_settings

    named = get_settings().shared_tokenizers
    if given in BUILT_IN_TOKENIZERS:
        return given
    if given in named:
        return named[given]
    choices = ", ".join(dict.fromkeys([*BUILT_IN_TOKENIZERS[:3], *sorted(named)]))
    raise UserError(f"tokenizer: a shared server counts with {choices}; a tokenizer file "
                    "of the server's cannot be named")


def shown_tokenizer(spec: str, rt: Runtime) -> str:
    """A tokenizer as a shared server's caller sees it: its name, never the path of the
    operator's file (llama4:/models/... shows as the name it is configured under, or llama4)."""
    if not rt.shared or spec in BUILT_IN_TOKENIZERS:
        return spec
    from app.settings import get_settings

    names = {v: k for k, v in get_settings().shared_tokenizers.items()}
    return names.get(spec) or spec.split(":", 1)[0]


def writable_out(given: str) -> Path:
    """Where the operator's own client may write a pack: a new file in an existing folder, or
    a file that is a pack scoutlens wrote (a link: the file it points to). Never an unrelated
    file, which a document could ask an agent to overwrite. The write itself is atomic."""
    try:
        return _checked_out(Path(given).expanduser())
    except (OSError, ValueError, RuntimeError) as exc:  # NUL, name too long, links in a loop
        why = getattr(exc, "strerror", None) or exc
        raise UserError(f"out: cannot write there: {why}") from None


def _checked_out(named: Path) -> Path:
    from app.services.packing import is_pack_output

    path = named.resolve()
    if not path.parent.is_dir():
        raise UserError(f"out: no folder {path.parent} (give a file in an existing folder)")
    if path.is_dir():
        raise UserError(f"out: {path} is a folder (give a file name)")
    if (named.is_symlink() or path.exists()) and not is_pack_output(path):
        raise UserError(f"out: refusing to overwrite {path}: it is not a pack scoutlens wrote "
                        "(give a new file name)")
    _plain_pack_name(path)
    return path


def _plain_pack_name(path: Path) -> None:
    """A new file is a pack's file by its name: a pack suffix, in no hidden folder. A document
    could ask an agent to create ~/.ssh/authorized_keys, ~/.bash_profile, a .git hook or
    /etc/cron.d/job, which a program then runs or believes; none of those ends in a pack's
    suffix or lies outside a dot-folder."""
    if path.suffix.lower() not in PACK_SUFFIXES:
        raise UserError(f"out: a pack is written to a {', '.join(PACK_SUFFIXES)} file, not "
                        f"{path.name!r}")
    hidden = next((part for part in path.parts if part.startswith(".")), None)
    if hidden is not None:
        raise UserError(f"out: {path} is in the hidden {hidden!r}: packs are not written "
                        "among dotfiles (give a file in an ordinary folder)")


def ask(args: AskArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    from app.services.ask import AskInput, ask
    from app.services.targets import resolve_target

    # the question is checked before the model loads or waits its turn
    AskInput(args.corpus, args.question, args.mode, args.max_tokens, args.conversation)
    notes: list[str] = []
    # the corpus too (a path is ingested here, once, when the server is local); its snapshot
    # is opened at the model's turn, so a waiting ask holds no database connection
    corpus = resolve_target(args.corpus, who, notes.append, progress, corpus_only=rt.shared)
    asked = AskInput(corpus, args.question, args.mode, args.max_tokens, args.conversation,
                     corpus_only=True)
    with rt.turn() as backend:
        result = ask(asked, backend, who=who, note=notes.append)
    c = result.completion
    return {
        "answer": result.answer, "corpus": result.corpus, "mode": result.mode,
        "citations": [s.to_json() | {"label": s.label()} for s in result.sources
                      if s.kind == "cited"],
        "matched_evidence": [s.to_json() | {"label": s.label()} for s in result.sources
                             if s.kind == "matched"],
        "corpus_tokens": result.corpus_tokens, "in_context_tokens": result.in_context_tokens,
        "share_of_corpus": round(result.share, 4),
        "usage": {"prompt_tokens": c.usage.prompt_tokens, "cached_tokens": c.usage.cached_tokens,
                  "completion_tokens": c.usage.completion_tokens},
        "conversation": result.conversation, "turn": result.turn,
        "finish_reason": c.finish_reason, "incomplete": c.incomplete,
        "injections": result.injections, "notes": notes, "backend": c.backend, "model": c.model}


def analyze(args: AnalyzeArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    """The analysis's result JSON (app.services.analysis), its map and reduce calls reported
    as progress. Checked, and its corpora resolved (a stored name the caller may read; a
    path is ingested only on a local server), before the model loads or waits its turn; the
    analysis holds the turn for all its calls on the in-process model."""
    from app.services.analysis.run import analyze as run
    from app.services.targets import resolve_target

    args.asked()  # one line for 500 fields or one source twice, before anything is read
    notes: list[str] = []

    def resolved(target: str) -> str:
        return resolve_target(target, who, notes.append, progress, corpus_only=rt.shared)

    asked = args.asked(resolved(args.corpus), resolved(args.other) if args.other else None)

    def waiting() -> None:
        progress("waiting for the model", 0, 0, "another call has it")

    with rt.turns().turn(waiting) as backend:
        progress("analysing", 0, 0, f"{asked.kind} of {asked.corpus}")  # cancelled: stops here
        result = run(asked, backend, who=who, progress=progress, resume=args.resume).to_json()
    return result | {"notes": notes + result["notes"]}


def analyses(args: AnalysesArgs, rt: Runtime, who: Who, progress: Progress) -> dict:
    """The caller's analyses, or one whole (JSON, or Markdown/CSV as a `document`)."""
    from app.servers.analyses import rendered, summary
    from app.services.analysis.store import analyses as rows
    from app.services.analysis.store import analysis

    if args.analysis_id is None:
        return {"analyses": [summary(r) for r in rows(args.corpus, who)]}
    one = analysis(args.analysis_id, who)
    if one.result is None:
        raise UserError(f"analysis {one.analysis_id} is {one.status}: no result yet"
                        + (f" ({one.error})" if one.error else "")
                        + f"; call analyze with its arguments and resume={one.analysis_id!r}")
    if args.format == "json":
        return one.result
    return {"analysis_id": one.analysis_id, "format": args.format,
            "document": rendered(one.result, args.format).decode("utf-8")}


#: tool name -> its function (the schemas module has the arguments and descriptions)
HANDLERS: dict[str, Callable[[Any, Runtime, Who, Progress], dict]] = {
    "list_corpora": list_corpora, "ingest": ingest, "search": search,
    "read_source": read_source, "pack": pack, "ask": ask, "analyze": analyze,
    "analyses": analyses}
