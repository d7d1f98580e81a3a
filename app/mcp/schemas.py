"""Each tool's arguments as a pydantic model: the JSON schema a client shows a person (every
field described, defaults and limits in it), and the check of what a client sends, whose
refusal is one line naming the argument (pydantic's own report spans several lines and would
reach a model as noise)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import UserError

if TYPE_CHECKING:
    from app.services.analysis.types import AnalyzeInput

CORPUS = "a stored corpus name (list_corpora shows them)"


class BadArguments(UserError):
    """A tool call whose arguments do not fit the tool's schema."""


class Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ListCorporaArgs(Arguments):
    pass


class IngestArgs(Arguments):
    paths: list[str] = Field(
        min_length=1, max_length=64,
        description="folders, git repositories, files or zip/tar archives on the machine the "
                    "server runs on (~ is expanded); git repositories are read through git, "
                    "so ignored files stay out")
    corpus: str | None = Field(
        None, max_length=200,
        description="corpus to ingest into (created when new; re-ingesting is incremental). "
                    "Default: named after the first path")
    tokenizer: str | None = Field(
        None, description="tokenizer the corpus is counted with: cl100k, o200k, llama4:PATH, "
                          "hf:DIR or embedded (default: the configured one, cl100k)")


class SearchArgs(Arguments):
    corpus: str = Field(description=CORPUS)
    query: str = Field(min_length=1, max_length=4000,
                       description="identifiers, file names, words or a question")
    k: int = Field(10, ge=1, le=200, description="how many hits to return, best first")


class ReadSourceArgs(Arguments):
    corpus: str = Field(description=CORPUS)
    path: str = Field(description="the source's path as search and list results give it "
                                  "(e.g. src/app.py)")
    start_line: int | None = Field(None, ge=1, description="first line to read (code and text; "
                                                           "default 1)")
    end_line: int | None = Field(None, ge=1, description="last line to read (default: 200 "
                                                         "lines from start_line)")
    page: int | None = Field(None, ge=1, description="a PDF's page number")
    second: float | None = Field(None, ge=0, description="a video's time in seconds: the "
                                                         "frame shown then, with its text")


class PackArgs(Arguments):
    target: list[str] = Field(
        min_length=1, max_length=64,
        description="one stored corpus name, or (local server only) paths on the server's "
                    "machine to pack")
    budget: int | str | None = Field(
        None, description="token budget: 8192, 128k, 1.5M (k = 1,024); over it the pack "
                          "fails unless fit is true. Default: no limit")
    tokenizer: str | None = Field(
        None, description="count tokens as the model that will read it does: cl100k (GPT-4), "
                          "o200k (GPT-4o and later), embedded; on a local server also "
                          "llama4:PATH (a Llama 4 tokenizer.model) or hf:DIR, on a shared one "
                          "a name its operator configured instead (never a path); default: "
                          "the corpus's own")
    format: Literal["xml", "markdown"] = Field("xml", description="xml | markdown")
    fit: bool = Field(False, description="reduce (code to its outline) or drop the "
                                         "lowest-priority sources until it fits the budget")
    out: str | None = Field(
        None, description="local server only: write the packed text to this file on the "
                          "server's machine and return only the summary: a new .xml, .md, "
                          ".markdown or .txt file in an existing folder that is not hidden, "
                          "or a pack scoutlens wrote before (any other existing file is "
                          "refused; never inside a packed folder); default: the text comes "
                          "back in the result")


class AskArgs(Arguments):
    corpus: str = Field(description=CORPUS)
    question: str = Field(min_length=1, max_length=4000, description="the question")
    mode: Literal["auto", "full", "retrieval"] = Field(
        "auto", description="full: the whole corpus in context when it fits; retrieval: the "
                            "best-ranked pieces; auto: full when it fits, else retrieval")
    max_tokens: int = Field(384, ge=1, le=8192, description="the longest answer, in tokens")
    conversation: str | None = Field(
        None, max_length=64, description="follow up on this conversation (the id an earlier "
                                         "ask returned); default: a new one")


class AnalyzeArgs(Arguments):
    corpus: str = Field(description=CORPUS)
    kind: Literal["brief", "extract", "compare"] = Field(
        description="brief: a briefing of the whole corpus (themes, key facts, open questions) "
                    "and a guide line per source; extract: one row per source with `fields` "
                    "filled, each cell cited and checked; compare: the exact changes between "
                    "`left` and `right` (or this corpus and `other`), then what they mean")
    fields: (Annotated[list[str], Field(max_length=1000)]
             | Annotated[str, Field(max_length=100_000)] | None) = Field(
        None, description="extract: the fields to fill, as a list or one comma-separated text "
                    "(`party, start date, amount`; `amount: the total in EUR` describes one)")
    left: str | None = Field(None, max_length=1000,
                             description="compare: a source path of the corpus")
    right: str | None = Field(None, max_length=1000,
                              description="compare: another source path of the corpus")
    other: str | None = Field(None, max_length=200,
                              description="compare: a second corpus (another version of this "
                                          "one) instead of left/right")
    max_tokens: int = Field(512, ge=16, le=8192,
                            description="the longest answer of one model call, in tokens")
    resume: str | None = Field(
        None, max_length=64, description="continue an interrupted analysis (its id, from "
                                         "analyses) from the calls it finished")

    def asked(self, corpus: str | None = None, other: str | None = None) -> AnalyzeInput:
        """The analysis these arguments ask for, checked (BadAnalysis in one line: 500
        fields, none for extract, one source twice), over `corpus`/`other` once resolved."""
        from app.services.analysis.types import AnalyzeInput

        given = self.fields.split(",") if isinstance(self.fields, str) else self.fields or []
        fields = tuple(f.strip() for f in given if f.strip())
        return AnalyzeInput(corpus or self.corpus, self.kind, fields, self.left, self.right,
                            other or self.other, self.max_tokens)


class AnalysesArgs(Arguments):
    corpus: str | None = Field(None, max_length=200,
                               description="list only this corpus's analyses")
    analysis_id: str | None = Field(
        None, max_length=64, description="read this analysis whole instead of listing")
    format: Literal["json", "md", "csv"] = Field(
        "json", description="with analysis_id: json (everything), md (a readable report) or "
                            "csv (an extraction's table)")


#: tool name -> (its arguments, its title, what it does: shown to a person choosing tools)
TOOLS: dict[str, tuple[type[Arguments], str, str]] = {
    "list_corpora": (ListCorporaArgs, "List corpora", (
        "The stored corpora you may read: name, sources, tokens, tokenizer, last update.")),
    "ingest": (IngestArgs, "Ingest a local path", (
        "Read folders, repositories, files or archives on the server's machine into a corpus "
        "(incremental: unchanged files are not read again). Noise (binaries, lockfiles, "
        "generated and vendored files, .gitignore'd files) stays out; secrets are redacted. "
        "Refused on a server shared over the network. Reports progress.")),
    "search": (SearchArgs, "Search a corpus", (
        "Ranked places in a corpus for a query, best first: each hit's path, lines (or PDF "
        "page, video time), fused score and the signals that found it (symbol definitions, "
        "file names, BM25). Read a hit with read_source.")),
    "read_source": (ReadSourceArgs, "Read a source", (
        "The stored text of one source of a corpus: a line range of code or text, a PDF "
        "page, or the words on a video's frame at a time. Lines come numbered.")),
    "pack": (PackArgs, "Pack for your model", (
        "A corpus or paths as one text that fits a token budget, counted exactly with your "
        "model's tokenizer: a manifest (each source's tokens) then every source in a wrapper "
        "with its path and lines. Returns the text, or writes it to a file.")),
    "ask": (AskArgs, "Ask a corpus", (
        "Answer a question from a corpus on scoutlens's own model, with citations checked "
        "against the context (or, when the model cites nothing valid, the best-matching "
        "spans as evidence); says the mode, the share of the corpus in context, and the "
        "prompt tokens served from the KV cache.")),
    "analyze": (AnalyzeArgs, "Analyse a whole corpus", (
        "A briefing, an extraction into a table (one row per source) or a comparison over the "
        "whole corpus on scoutlens's model: map calls over window-sized parts, reduced until "
        "one result fits; every citation and cell checked against the corpus; says its "
        "coverage (the share of sources read, and what was cut and why). Stored (analyses "
        "lists them); an interrupted one resumes. Reports progress.")),
    "analyses": (AnalysesArgs, "Your analyses", (
        "The analyses you ran, newest first (id, corpus, kind, status, coverage), or one of "
        "them whole as JSON, Markdown or an extraction's CSV.")),
}


def input_schema(tool: str) -> dict[str, Any]:
    """The JSON schema of a tool's arguments (an object; no extra keys accepted)."""
    schema = TOOLS[tool][0].model_json_schema()
    schema.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def one_line(exc: ValidationError) -> str:
    """`k: must be at most 200 (got 1000); query: missing` from pydantic's report."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        kind, msg = err["type"], err["msg"]
        if kind == "missing":
            text = "missing (required)"
        elif kind == "extra_forbidden":
            text = "not an argument of this tool"
        else:
            given = err.get("input")
            shown = repr(given) if isinstance(given, str | int | float | bool) else None
            text = msg[0].lower() + msg[1:] + (f" (got {shown[:60]})" if shown else "")
        parts.append(f"{where}: {text}")
    return "; ".join(dict.fromkeys(parts))


def parse(tool: str, arguments: dict[str, Any] | None) -> Arguments:
    """The arguments of `tool`, checked; BadArguments with one line when they do not fit."""
    if tool not in TOOLS:
        raise BadArguments(f"no such tool: {tool!r} (tools: {', '.join(TOOLS)})")
    try:
        return TOOLS[tool][0].model_validate(arguments or {})
    except ValidationError as exc:
        raise BadArguments(f"bad arguments for {tool}: {one_line(exc)}") from None
