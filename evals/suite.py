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
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine.types import EngineError
from evals.runner import EvalConfig
from evals.tasks import expand_tasks


class SuiteError(EngineError):
    """A suite file or flag the user has to fix; the CLI prints it as one line."""


def parse_length(value: Any) -> int:
    """`1k`, `128k`, `1M`, `10M` (k = 1,024, M = 1,048,576) or a plain number of tokens."""
    from ingest.pack import parse_budget
    from ingest.types import IngestError

    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{value!r} is not a length")
    try:
        return parse_budget(str(value))
    except IngestError:
        raise ValueError(f"{value!r} is not a length (use e.g. 1k, 32k, 1M)") from None


def parse_depth(value: Any) -> float:
    """A fraction (0-1) or a percent (above 1, up to 100); `50%` works too."""
    text = str(value).strip().removesuffix("%")
    try:
        depth = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a depth (0-100 percent or 0-1)") from None
    depth = depth / 100 if depth > 1 or str(value).strip().endswith("%") else depth
    if not 0 <= depth <= 1:
        raise ValueError(f"{value!r} is not a depth (0-100 percent or 0-1)")
    return depth


def _task(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a task name")
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
    samples: int | None = Field(None, ge=1)
    seed: int | None = None
    haystack: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    backend: str | None = None
    endpoint: str | None = None
    model: str | None = None
    concurrency: int | None = Field(None, ge=1)
    tokenizer: str | None = None
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
    return out


def _message(name: str, exc: ValidationError) -> str:
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    where = _where(err["loc"])
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][0]), FIELDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"{name}: {where}: unknown field ({hint}fields: {', '.join(FIELDS)})"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] != "value_error":
        msg += f" (got {err['input']!r})"
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
    import yaml

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{path}: not valid YAML: {where}{problem}") from None
    return validate(data, str(path))


def resolve(suite: Suite | None, flags: dict[str, Any]) -> tuple[EvalConfig, Target]:
    """Defaults, then the suite file, then the flags given on the command line (None = not
    given); `ruler` in the tasks expands to its eight tasks."""
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
