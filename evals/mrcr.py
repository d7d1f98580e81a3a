"""OpenAI MRCR (multi-round co-reference: a long synthetic conversation hides 2, 4 or 8
identical asks, "write a poem about tapirs", and the last turn asks for the i-th answer with a
random string prepended) from its published files, asked and graded as its dataset card does.

Data: the Hugging Face dataset openai/mrcr (MIT), never downloaded here: `2needle/`,
`4needle/`, `8needle/` with their parquet parts (`2needle_0.parquet`, ...), or one
`2needle.parquet` per count. A record's `prompt` is the conversation as a JSON list of
{role, content}, `answer` the expected reply and `random_string_to_prepend` its prefix.

Asked as the card asks: the conversation as chat messages. Graded by its `grade`: 0 unless the
answer starts with the random string; else difflib's SequenceMatcher ratio of the answer and the
expected reply, both without the string. Binned as OpenAI reports it: a record's size is the sum
of its messages' o200k_base tokens (the card's `n_tokens`), bins (4K, 8K], (8K, 16K], ... to
(512K, 1M] (the first bin takes 4,096 itself); a cell's length is its bin's upper bound and
sample k is the k-th record of the file in that bin. The card sets no answer length: here it is
twice the expected reply's tokens plus 64, so the reply fits and a runaway answer stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from common.text import encodable

NEEDLES = (2, 4, 8)
TASKS = tuple(f"mrcr-{n}" for n in NEEDLES)
BINS = tuple(1 << k for k in range(13, 21))  # 8K ... 1M: upper bounds
ROLES = ("system", "user", "assistant")


class MRCRError(ValueError):
    """The files are missing or not MRCR's."""


@dataclass(frozen=True)
class Record:
    messages: tuple[tuple[str, str], ...]  # (role, content), the last a user turn
    answer: str
    prefix: str  # random_string_to_prepend
    tokens: int  # the card's n_tokens (o200k_base, contents summed)
    row: int  # its row in the files, in order


def grade(response: str, answer: str, prefix: str) -> float:
    """The card's grade."""
    if not response.startswith(prefix):
        return 0.0
    response = response.removeprefix(prefix)
    answer = answer.removeprefix(prefix)
    return float(SequenceMatcher(None, response, answer).ratio())


def in_bin(tokens: int, upper: int) -> bool:
    lower = upper // 2
    return (lower < tokens <= upper) or (upper == BINS[0] and tokens == lower)


class Data:
    """A local copy of openai/mrcr: each needle count's rows read a batch at a time, counted
    with o200k_base only where their characters could fall in a bin asked for."""

    def __init__(self, folder: str):
        from ingest.tokenizers import load_tokenizer

        self.root = Path(folder).expanduser()
        if not self.root.is_dir():
            raise MRCRError(f"MRCR data folder not found: {folder}")
        self.count = load_tokenizer("o200k").count  # the card's n_tokens: o200k_base
        self._found: dict[tuple[int, int], list[Record]] = {}

    def files(self, needles: int) -> list[Path]:
        parts = sorted((p for p in (self.root / f"{needles}needle").glob(
            f"{needles}needle_*.parquet") if p.is_file()), key=lambda p: _part(p.stem))
        single = self.root / f"{needles}needle.parquet"
        found = parts or ([single] if single.is_file() else [])
        if not found:
            raise MRCRError(f"no MRCR file for {needles} needles in {self.root} (expected "
                            f"{needles}needle/{needles}needle_0.parquet, as openai/mrcr "
                            "publishes it)")
        return found

    def records(self, needles: int, upper: int, samples: int) -> list[Record]:
        """The first `samples` records of the bin ending at `upper` (fewer: an error)."""
        if upper not in BINS:
            raise MRCRError(f"MRCR's lengths are its bins' upper bounds, "
                            f"{', '.join(_label(b) for b in BINS)}: {upper:,} is not one")
        key = (needles, upper)
        have = self._found.get(key, [])
        if len(have) >= samples:
            return have[:samples]
        have = []
        for record in self._scan(needles, upper):
            have.append(record)
            if len(have) == samples:
                break
        self._found[key] = have
        if len(have) < samples:
            raise MRCRError(f"{self.root}: {len(have)} records of {needles} needles fall in "
                            f"the bin up to {upper:,} tokens; sample {samples} was asked for")
        return have

    def _scan(self, needles: int, upper: int):
        import pyarrow.parquet as pq

        for path in self.files(needles):
            row = 0
            try:
                f = pq.ParquetFile(path)
                names = set(f.schema_arrow.names)
                need = {"prompt", "answer", "random_string_to_prepend"}
                if not need <= names:
                    raise MRCRError(f"{path}: lacks the columns {', '.join(sorted(need - names))}")
                for batch in f.iter_batches(batch_size=16, columns=sorted(need)):
                    for r in batch.to_pylist():
                        row += 1
                        # a token is at least one byte: a prompt of fewer bytes than the
                        # bin's lower bound is below it, and is not counted
                        size = (len(r["prompt"].encode("utf-8", "surrogatepass"))
                                if isinstance(r["prompt"], str) else upper)
                        if size <= upper // 2:
                            continue
                        record = self._record(path, row, r)
                        if in_bin(record.tokens, upper):
                            yield record
            except MRCRError:
                raise
            except Exception as exc:  # pyarrow's many errors for a file that is not parquet
                raise MRCRError(f"{path}: not a parquet file MRCR publishes "
                                f"({type(exc).__name__}: {str(exc)[:100]})") from None

    def _record(self, path: Path, row: int, r: dict) -> Record:
        where = f"{path}: row {row}"
        if not all(isinstance(r.get(k), str) for k in ("prompt", "answer",
                                                       "random_string_to_prepend")):
            raise MRCRError(f"{where}: prompt, answer and random_string_to_prepend must be text")
        try:
            messages = json.loads(r["prompt"])
        except (ValueError, RecursionError):
            raise MRCRError(f"{where}: its prompt is not the JSON list of messages") from None
        if (not isinstance(messages, list) or not messages
                or not all(isinstance(m, dict) and m.get("role") in ROLES
                           and isinstance(m.get("content"), str) for m in messages)):
            raise MRCRError(f"{where}: its prompt is not a list of {{role, content}} messages")
        if messages[-1]["role"] != "user":
            raise MRCRError(f"{where}: its conversation does not end with a user turn")
        turns = tuple((m["role"], m["content"]) for m in messages)
        if not encodable([turns, r["answer"], r["random_string_to_prepend"]]):
            raise MRCRError(f"{where}: text that is not Unicode (a lone surrogate)")
        tokens = sum(self.count(text) for _, text in turns)
        return Record(turns, r["answer"], r["random_string_to_prepend"], tokens, row)


def _label(tokens: int) -> str:
    return f"{tokens >> 20}M" if tokens >= 1 << 20 else f"{tokens >> 10}k"


def _part(stem: str) -> int:
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0
