"""Suite files: an eval grid and its target in YAML, so a CI job runs the same suite every time.

```yaml
tasks: [niah, ruler]        # or code / pdf / video with a corpus haystack
lengths: [1k, 4k, 32k]
depths: [0, 25, 50, 75, 100]
samples: 2
haystack: prose             # prose | filler | the name of an ingested corpus
endpoint: http://127.0.0.1:8000/v1
```

Validated with pydantic; every problem becomes one line naming the file and the field
(`suite.yaml: lengths[2]: '12q' is not a length`). Flags on the command line override the file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine.types import EngineError
from evals.runner import EvalConfig
from evals.tasks import expand_tasks

MAX_BYTES = 1 << 20  # a suite is a few lines; this bounds what a wrong path can cost
MAX_DEPTH = 8  # a suite is a mapping of lists of scalars: depth 2
MAX_LENGTH = 2**31 - 1  # stored in 32-bit integer columns
MAX_ALIASES = 50  # anchors are shared, never expanded: messages show them bounded


class SuiteError(EngineError):
    """A suite file or flag the user has to fix; the CLI prints it as one line."""


def _clip(text: str, limit: int = 160) -> str:
    """One line of at most `limit` characters, for echoing what a user wrote."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_length(value: Any) -> int:
    """`1k`, `128k`, `1M`, `10M` (k = 1,024, M = 1,048,576) or a plain number of tokens."""
    from ingest.pack import parse_budget
    from ingest.types import IngestError

    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{_show(value)} is not a length")
    try:
        length = parse_budget(str(value))
    except (IngestError, OverflowError, ValueError):
        raise ValueError(f"{_show(value)} is not a length (use e.g. 1k, 32k, 1M)") from None
    if length > MAX_LENGTH:
        raise ValueError(f"{_show(value)} is over the longest length, {MAX_LENGTH:,} tokens")
    return length


def parse_depth(value: Any) -> float:
    """A fraction (0-1) or a percent (above 1, up to 100); `50%` works too."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_show(value)} is not a depth (0-100 percent or 0-1)")
    text = str(value).strip().removesuffix("%")
    try:
        depth = float(text)
    except (ValueError, OverflowError):
        raise ValueError(f"{_show(value)} is not a depth (0-100 percent or 0-1)") from None
    depth = depth / 100 if depth > 1 or str(value).strip().endswith("%") else depth
    if not 0 <= depth <= 1:
        raise ValueError(f"{_show(value)} is not a depth (0-100 percent or 0-1)")
    return depth


def _task(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"{_show(value)} is not a task name")
    expand_tasks([value])  # raises with the list of valid names
    return value


Length = Annotated[int, BeforeValidator(parse_length)]
Depth = Annotated[float, BeforeValidator(parse_depth)]
Task = Annotated[str, BeforeValidator(_task)]


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[Task] | None = Field(None, min_length=1)
    lengths: list[Length] | None = Field(None, min_length=1)
    depths: list[Depth] | None = Field(None, min_length=1)
    samples: int | None = Field(None, ge=1, le=100_000)
    seed: int | None = None
    haystack: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    concurrency: int | None = Field(None, ge=1)
    tokenizer: str | None = None
    data: str | None = Field(None, min_length=1, max_length=4096)
    keep_thinking: bool | None = None
    ruler_template: Literal["base", "chat"] | None = None
    suite_max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    run_id: str | None = None
    out: str | None = None


FIELDS = tuple(Suite.model_fields)


@dataclass(frozen=True)
class Target:
    """Where a suite runs; not part of the grid, so not stored as config."""

    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    tokenizer: str | None = None
    run_id: str | None = None
    out: str | None = None


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return _clip(out, 80)


def _show(value: Any) -> str:
    """A bounded repr: reprlib stops at a few levels and items, so a shared-alias structure
    that would expand to millions of items is shown in a line."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 3, 60, 60
    return _clip(r.repr(value))


def _message(name: str, exc: ValidationError) -> str:
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    where = _where(err["loc"])
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][0])[:40], FIELDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"{name}: {where}: unknown field ({hint}fields: {', '.join(FIELDS)})"
    msg = _clip(err["msg"].removeprefix("Value error, "), 300)
    if err["type"] != "value_error":
        msg += f" (got {_show(err['input'])})"
    return f"{name}: {where}: {msg}"


def validate(data: Any, name: str = "suite") -> Suite:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SuiteError(f"{name}: a suite is a mapping of fields ({', '.join(FIELDS)}), "
                         f"not a {type(data).__name__}")
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(_message(name, exc)) from None


def load(path: Path) -> Suite:
    """A suite file, or a one-line SuiteError: unreadable, over MAX_BYTES, not YAML, nested
    deeper than MAX_DEPTH, too many aliases (a billion-laughs file), or a field that is wrong."""
    try:
        with path.open("rb") as f:  # bounded: a path to /dev/zero must not read forever
            raw = f.read(MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    if len(raw) > MAX_BYTES:
        raise SuiteError(f"{path}: a suite file is at most {MAX_BYTES:,} bytes")
    return validate(parse_yaml(text, str(path)), str(path))


def parse_yaml(text: str, name: str = "suite") -> Any:
    """YAML text to plain data. The shape is checked on the parser's events first (the
    parser is iterative; the composer that builds objects recurses and would overflow)."""
    import yaml

    try:
        depth = aliases = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SuiteError(f"{name}: nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise SuiteError(f"{name}: more than {MAX_ALIASES} aliases (*name)")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
        raise SuiteError(f"{name}: not valid YAML: {where}{_clip(problem)}") from None
    except (RecursionError, ValueError, OverflowError) as exc:  # e.g. a huge int's digits
        raise SuiteError(f"{name}: not a usable suite: {_clip(str(exc))}") from None


def resolve(suite: Suite | None, flags: dict[str, Any]) -> tuple[EvalConfig, Target]:
    """Defaults, then the suite file, then the flags given on the command line (None = not
    given); `ruler`, `ruler-style` and `babilong` in the tasks expand to theirs."""
    merged = {k: v for k, v in (suite.model_dump() if suite else {}).items() if v is not None}
    given = {k: v for k, v in flags.items() if v is not None}
    checked = validate(given, "command line") if given else Suite()
    merged.update({k: v for k, v in checked.model_dump().items() if v is not None})
    try:
        tasks = expand_tasks(merged.pop("tasks", ["niah"]))
    except ValueError as exc:
        raise SuiteError(str(exc)) from None
    target = Target(**{k: merged.pop(k, None) for k in
                       ("backend", "endpoint", "model", "tokenizer", "run_id", "out")})
    grid = {k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()}
    return EvalConfig(tasks=tasks, **grid), target
