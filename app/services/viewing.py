"""What a reader needs to check a citation: the stored text of a source, and its original file
on disk where one still exists (PDF pages are drawn from it), plus cache figures for the engine
page. Read-only: nothing here writes to the database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from app.database import session_scope
from app.models import Corpus, Question, Source, StoredSegment
from app.services.access import (
    CorpusNotFound,
    Who,
    corpus_for,
    corpus_readable,
    manages_server,
)
from app.settings import database_url, get_settings
from ingest.archives import is_archive


@dataclass(frozen=True)
class SourcePart:
    """One stored segment of a source: lines start..end of code/text, page `start` of a PDF,
    or part `start` of an Office file, web page, mail or e-book (`locator` cites it)."""

    kind: str  # lines | page | time | cell | part
    start: int | None
    end: int | None
    text: str
    locator: str = ""


@dataclass(frozen=True)
class SourceView:
    corpus: str
    path: str
    kind: str  # code | text | pdf | notebook | video
    file: Path | None  # the original file, when it is still on disk and not inside an archive
    parts: list[SourcePart]
    flags: tuple[str, ...] = ()

    def part(self, locator: str) -> SourcePart | None:
        """The part a citation names ("slide 5 (notes)", "Opex!A1:C5"): exactly, else the
        first whose locator starts with it (a long part split as "§4 Renewal ¶2-¶9")."""
        parts = [p for p in self.parts if p.kind == "part"]
        return (next((p for p in parts if p.locator == locator), None)
                or next((p for p in parts if locator and p.locator.startswith(locator)), None))

    def page(self, number: int) -> SourcePart | None:
        return next((p for p in self.parts if p.kind == "page" and p.start == number), None)

    def page_holds_secret(self, number: int) -> bool:
        """Whether ingest found a secret on page `number` (its flag, or its stored text's
        redaction mark: flags stop at 100 a document): its picture must hide it."""
        part = self.page(number)
        return any(f.startswith(f"secret:p{number}:") for f in self.flags) \
            or (part is not None and "[REDACTED:" in part.text)

    def page_unchecked(self, number: int) -> bool:
        """Whether page `number` had no text layer and was not OCRed: nothing on its picture was
        checked for secrets, so it is not drawn."""
        return f"no-text-layer:p{number}" in self.flags

    def frame_holds_secret(self, seconds: int) -> bool:
        """Whether the frame drawn for `seconds` (a citation's whole second) showed a secret
        (its OCR text was redacted): the kept frame on screen then, or one within that second."""
        frames = [p for p in self.parts if p.kind == "time" and p.start is not None
                  and p.text.startswith("<frame")]
        ms = seconds * 1000
        shown = [p for p in frames if p.start <= ms][-1:]
        return any("[REDACTED:" in p.text
                   for p in shown + [p for p in frames if ms < p.start < ms + 1000])

    def picture_part(self, src: dict) -> SourcePart | None:
        """The stored segment of a picture a citation names (a TIFF's page, a picture file's
        one part, an embedded picture's part), if that segment holds a `<picture>` tag."""
        if src.get("page") is not None:
            part = self.page(int(src["page"]))
        else:
            part = self.part(str(src.get("part") or ""))
            pictures = [p for p in self.parts if "<picture " in p.text]
            if part is None and self.kind == "image" and len(pictures) == 1:
                part = pictures[0]  # a picture file's one part, however it is cited
        return part if part is not None and "<picture " in part.text else None

    def picture_withheld(self, part: SourcePart) -> str | None:
        """Why a picture must not be drawn, or None: its words held a secret (redacted, or
        flagged where secrets are kept), or it was never OCRed so never checked for one."""
        where = (f"p{part.start}" if part.kind == "page"
                 else f"[{part.locator}]" if part.locator else "[file]")
        if "[REDACTED:" in part.text or any(
                f.startswith((f"secret:{where}:", f"picture-withheld:{where}:"))
                for f in self.flags):
            return "picture withheld: it shows a redacted secret"
        if self.kind == "image" and "no-ocr" in self.flags:
            return ("picture withheld: it was not OCRed, so it was never checked for "
                    "secrets")
        return None

    def lines(self) -> list[str]:
        """The text as lines (line n is index n - 1): segments concatenate back to the file."""
        return "".join(p.text for p in self.parts).split("\n")


def original_file(root: str, path: str) -> Path | None:
    """The file a source was read from: the input itself, or the path under an input folder
    (with or without the input's name as a prefix, as several inputs are named)."""
    base = Path(root)
    if base.is_file():
        return None if is_archive(base) else base
    if not base.is_dir():
        return None
    inside = base.resolve()
    rel = Path(path)
    for candidate in (rel, Path(*rel.parts[1:]) if len(rel.parts) > 1 else None):
        if candidate is None:
            continue
        full = (base / candidate).resolve()
        if full.is_file() and full.is_relative_to(inside):
            return full
    return None


def source_view(corpus: str, path: str, who: Who = None) -> SourceView:
    """A source's stored text and the original file (page and frame pictures come from it),
    for a corpus `who` may read; otherwise not found, as for a path that is not there."""
    with session_scope(database_url()) as session:
        owner = corpus_for(session, corpus, who)
        row = session.scalar(select(Source).where(
            Source.corpus_id == owner.id, Source.path == path, Source.status == "ok"))
        if row is None:
            raise CorpusNotFound(f"{path!r} is not a source of corpus {corpus!r}")
        parts = [SourcePart(s.span_kind, s.start, s.end, s.text, s.locator or "")
                 for s in session.scalars(select(StoredSegment)
                                          .where(StoredSegment.source_id == row.id)
                                          .order_by(StoredSegment.order))]
        return SourceView(corpus, row.path, row.kind, original_file(row.root, row.path), parts,
                          tuple(row.flags or ()))


def document_kinds(who: Who = None) -> dict[str, dict[str, int]]:
    """Per corpus `who` may read, how many sources of each kind it holds ({"docs": {"word":
    3, "mail": 5}}), most first: what the Corpora page's table says of each corpus."""
    with session_scope(database_url()) as session:
        readable = {row.id: row.name for row in session.scalars(select(Corpus))
                    if corpus_readable(who, row)}
        kinds: dict[str, dict[str, int]] = {name: {} for name in readable.values()}
        for corpus_id, kind, n in session.execute(
                select(Source.corpus_id, Source.kind, func.count())
                .where(Source.status == "ok").group_by(Source.corpus_id, Source.kind)):
            if corpus_id in readable:
                kinds[readable[corpus_id]][kind] = n
    return {name: dict(sorted(k.items(), key=lambda kv: (-kv[1], kv[0])))
            for name, k in kinds.items()}


@dataclass(frozen=True)
class CacheFigures:
    kv_dir: Path
    kv_blocks: int
    kv_bytes: int
    kv_budget_bytes: int
    models: dict[str, tuple[int, int]]
    answers: int
    prompt_tokens: int
    cached_tokens: int

    @property
    def hit_rate(self) -> float:
        """Share of all prompt tokens of stored answers that came from the KV cache."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


def cache_figures(who: Who = None) -> CacheFigures:
    """The KV cache on disk and the answers' cache use: everyone's for the operator and admins,
    only their own answers' for anyone else (the page shows them no disk figures nor paths)."""
    from engine.kvcache import usage_by_model  # imports torch: only the page that shows it

    s = get_settings()
    models = usage_by_model(s.kv_dir)
    prompt = cached = 0
    mine = [] if manages_server(who) else [Question.owner == who.name]
    with session_scope(s.db_url) as session:
        n = session.scalar(select(func.count(Question.id)).where(*mine)) or 0
        for (usage,) in session.execute(select(Question.usage).where(*mine)):
            usage = usage or {}
            prompt += int(usage.get("prompt_tokens") or 0)
            cached += int(usage.get("cached_tokens") or 0)
    return CacheFigures(s.kv_dir, sum(b for b, _ in models.values()),
                        sum(n for _, n in models.values()), int(s.kv_disk_gb * 2**30), models,
                        n, prompt, cached)
