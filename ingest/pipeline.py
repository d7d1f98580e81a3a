"""The ingest pipeline: collect -> filter -> read -> process -> count, as one pass.

Files whose sha256 matches what the caller already has (`known`) are reported unchanged and
neither re-segmented nor re-counted: that is what makes re-ingesting incremental.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest.collect import CollectOptions, collect
from ingest.counting import TokenCache, count_documents
from ingest.documents import ProcessOptions, process, read_bytes
from ingest.tokenizers import Tokenizer
from ingest.types import Document, Skipped

#: progress(stage, done, total, detail): stage is "collect", "read" or "count"
Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class PipelineOptions:
    collect: CollectOptions = field(default_factory=CollectOptions)
    process: ProcessOptions = field(default_factory=ProcessOptions)
    workers: int = 0


@dataclass
class PipelineResult:
    documents: list[Document]
    skipped: list[Skipped]
    unchanged: dict[str, str]  # path -> sha256 of files identical to the known version
    notes: list[str]
    roots: list[str]
    seen: int  # candidates looked at


def _noop(stage: str, done: int, total: int, detail: str) -> None:
    pass


def run_pipeline(inputs: list[Path], tokenizer: Tokenizer, options: PipelineOptions,
                 known: dict[str, str] | None = None, cache: TokenCache | None = None,
                 progress: Progress = _noop) -> PipelineResult:
    known = known or {}
    skipped: list[Skipped] = []
    unchanged: dict[str, str] = {}
    noise = options.process.noise
    with collect(inputs, options.collect) as found:
        candidates = found.candidates
        skipped.extend(found.skipped)
        total = len(candidates)
        progress("collect", total, total, f"{total} files")

        def documents() -> Iterator[Document]:
            for i, cand in enumerate(candidates, start=1):
                progress("read", i, total, cand.path)
                reason = noise.by_path(cand.path, cand.size)
                if reason is not None and noise.enabled(reason):
                    skipped.append(Skipped(cand.path, cand.root, cand.size, "skipped", reason))
                    continue
                data = read_bytes(cand)
                if isinstance(data, Skipped):
                    skipped.append(data)
                    continue
                sha = hashlib.sha256(data).hexdigest()
                if known.get(cand.path) == sha:
                    unchanged[cand.path] = sha
                    continue
                result = process(cand, data, options.process, sha, cache)
                if isinstance(result, Skipped):
                    skipped.append(result)
                    continue
                if reason is not None:  # noise by path, but that rule is switched off
                    result.flags.append(f"noise:{reason}")
                result.flags.extend(cand.flags)
                yield result

        docs = count_documents(documents(), tokenizer, cache, options.workers)
        progress("count", total, total, f"{sum(d.tokens for d in docs):,} tokens")
        roots = sorted({c.root for c in candidates} | {s.root for s in found.skipped}
                       | {str(p.expanduser().resolve()) for p in inputs})
        return PipelineResult(docs, skipped, unchanged, found.notes, roots, total)
