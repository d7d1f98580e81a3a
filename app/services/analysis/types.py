"""The seams of an analysis: what was asked (AnalyzeInput), how much of the corpus was read
(Coverage) and what came out (AnalysisResult)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

from app.services.citations import SourceRef
from common.errors import UserError

Kind = Literal["brief", "extract", "compare"]
KINDS = ("brief", "extract", "compare")
MAX_FIELDS = 40  # columns of one extraction: more would not leave the model room to answer
MAX_FIELD_CHARS = 200
RESERVED = ("source", "unchecked")  # the table's own columns


class BadAnalysis(UserError):
    """An analysis that cannot be asked for (no kind, no fields, too many, a bad schema)."""


def schema_fields(text: str, where: str = "the schema") -> tuple[str, ...]:
    """The fields of a JSON schema (its `properties`, each `name: description`), or of a JSON
    list of names; one line naming `where` for anything else (the CLI and the UI read one)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadAnalysis(f"{where} is not JSON ({str(exc)[:80]})") from None
    except RecursionError:  # 200,000 nested brackets
        raise BadAnalysis(f"{where} is nested too deeply to be a schema") from None
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return tuple(data)
    props = data.get("properties") if isinstance(data, dict) else None
    if not isinstance(props, dict) or not props:
        raise BadAnalysis(f"{where}: give a JSON schema with `properties`, or a list of field "
                          "names")
    return tuple(f"{name}: {spec['description']}" if isinstance(spec, dict)
                 and isinstance(spec.get("description"), str) else str(name)
                 for name, spec in props.items())


@dataclass(frozen=True)
class AnalyzeInput:
    """What to analyse and how; checked once, when made. `fields`: the columns of `extract`
    (each a name, optionally `name: what it is`); `left`/`right`: the two sources `compare`
    reads (paths in `corpus`), or `other`: a second corpus (another version of this one)."""

    corpus: str
    kind: Kind
    fields: tuple[str, ...] = ()
    left: str | None = None
    right: str | None = None
    other: str | None = None
    max_tokens: int = 512  # per model call

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BadAnalysis(f"unknown analysis {self.kind!r}: {' | '.join(KINDS)}")
        if self.kind == "extract":
            if not self.fields:
                raise BadAnalysis("extract needs the fields to fill: --fields \"party, start "
                                  "date, amount\" or --schema FILE.json")
            if len(self.fields) > MAX_FIELDS:
                raise BadAnalysis(f"{len(self.fields)} fields; at most {MAX_FIELDS} in one "
                                  "extraction (split them over several)")
            for f in self.fields:
                if not f.strip() or len(f) > MAX_FIELD_CHARS or any(c in f for c in "\n\r\0"):
                    raise BadAnalysis(f"not a field name: {f[:60]!r} (one line, at most "
                                      f"{MAX_FIELD_CHARS} characters)")
            if len({f.split(":")[0].strip().casefold() for f in self.fields}) < len(self.fields):
                raise BadAnalysis("a field is named twice")
            taken = {n.casefold() for n in self.names} & set(RESERVED)
            if taken:
                raise BadAnalysis(f"a field may not be called {sorted(taken)[0]!r}: the table "
                                  "has that column of its own")
        if self.kind == "compare":
            if self.other is None and (self.left is None or self.right is None):
                raise BadAnalysis("compare needs two sources (--left PATH --right PATH) or a "
                                  "second corpus (--other NAME)")
            if self.other is None and self.left == self.right:
                raise BadAnalysis(f"compare needs two different sources, not {self.left!r} "
                                  "twice")
            if self.other == self.corpus:
                raise BadAnalysis("compare needs two different corpora")
        if not 16 <= self.max_tokens <= 8192:
            raise BadAnalysis("--max-tokens: between 16 and 8192")

    @property
    def names(self) -> list[str]:
        """The fields' names (what precedes a `:` that describes the field)."""
        return [f.split(":")[0].strip() for f in self.fields]

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def of(cls, data: dict) -> AnalyzeInput:
        return cls(**{**data, "fields": tuple(data.get("fields") or ())})


@dataclass
class Coverage:
    """How much of the corpus the result read: every source, or exactly what was cut and why."""

    sources: int = 0
    read: int = 0  # sources read whole
    tokens: int = 0
    tokens_read: int = 0
    cut: list[dict] = field(default_factory=list)  # {"path", "why"}

    @property
    def share(self) -> float:
        return round(self.read / self.sources, 4) if self.sources else 1.0

    def to_json(self) -> dict:
        return {"coverage": self.share, "sources": self.sources, "sources_read": self.read,
                "tokens": self.tokens, "tokens_read": self.tokens_read, "cut": self.cut}


@dataclass
class AnalysisResult:
    """What an analysis made: `text` (a briefing, or what a comparison's changes mean), the
    per-source `guide`, the extraction's `rows` (each cell a dict: value, citation, verified,
    found), the comparison's exact `changes`; its citations, each checked; its coverage."""

    analysis_id: str
    kind: str
    corpus: str
    corpus_version: str
    coverage: Coverage
    text: str = ""
    guide: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    citations: list[SourceRef] = field(default_factory=list)
    calls: int = 0  # model calls made (resumed ones not counted)
    resumed: int = 0  # model calls taken from an interrupted run
    levels: int = 0  # reduce levels above the map calls
    usage: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"analysis_id": self.analysis_id, "kind": self.kind, "corpus": self.corpus,
                "corpus_version": self.corpus_version, **self.coverage.to_json(),
                "text": self.text, "guide": self.guide, "columns": self.columns,
                "rows": self.rows, "changes": self.changes,
                "citations": [c.to_json() for c in self.citations],
                "citations_verified": sum(c.verified for c in self.citations),
                "calls": self.calls, "resumed": self.resumed, "levels": self.levels,
                "usage": self.usage, "notes": self.notes}
