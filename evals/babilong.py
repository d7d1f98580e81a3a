"""BABILong (Kuratov et al., 2024: bAbI facts hidden in PG-19 books, lengths to 10M tokens) from
its published files, prompted and scored the way its authors do, so a score sits beside theirs.

Data: the Hugging Face dataset RMT-team/babilong (100 samples per task and length; the
1,000-sample one, RMT-team/babilong-1k-samples, has the same fields). Never downloaded here: the
user points at a local copy, laid out as published: `data/qa1/4k.json` (the JSON layout;
`qa1/4k.json` without `data/` too) or `4k/qa1-*.parquet` (the parquet layout). A record holds
`input` (the haystack with the facts), `question` and `target`.

Prompt: the authors' template, `{instruction}\\n{examples}\\n{post_prompt}\\n<context>\\n{input}
\\n</context>\\nQuestion: {question}`, stripped, with their default instruction, in-context
examples and post-prompt for qa1-qa5 (babilong/prompts.py in github.com/booydar/babilong, Apache
2.0: the texts below are theirs, word for word, typos included, as they are part of the
benchmark). Scoring (their babilong/metrics.py): the answer's first sentence, cut before an
echoed `<context>`, `<example>` or `Question`, lower-cased; the task's labels found in it, less
those the question names, must be exactly the target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.text import encodable

TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")
ANSWER_TOKENS = 20  # run_model_on_babilong.py's max_new_tokens
_ROOMS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
LABELS = {"qa1": _ROOMS, "qa2": _ROOMS, "qa3": _ROOMS, "qa4": _ROOMS,
          "qa5": ("Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk")}
#: the lengths the authors publish (tokens of their haystacks, nominal)
PUBLISHED = ("0k", "1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k", "256k", "512k", "1M",
             "10M")

TEMPLATE = ("{instruction}\n\n{examples}\n\n{post_prompt}\n\n"
            "<context>\n{context}\n</context>\n\nQuestion: {question}")

PROMPTS = {
    "qa1": {
        "instruction":
            "I will give you context with the facts about positions of different persons hidden "
            "in some random text and a question. You need to answer the question based only on "
            "the information from the facts. If a person was in different locations, use the "
            "latest location to answer the question.",
        "examples":
            "<example>\n"
            "Charlie went to the hallway. Judith come back to the kitchen. Charlie travelled to "
            "balcony. Where is Charlie?\n"
            "Answer: The most recent location of Charlie is balcony.\n"
            "</example>\n\n"
            "<example>\n"
            "Alan moved to the garage. Charlie went to the beach. Alan went to the shop. Rouse "
            "travelled to balcony. Where is Alan?\n"
            "Answer: The most recent location of Alan is shop.\n"
            "</example>",
        "post_prompt":
            "Always return your answer in the following format: The most recent location of "
            "\u2019person\u2019 is \u2019location\u2019. Do not write anything else after "
            "that.",
    },
    "qa2": {
        "instruction":
            "I give you context with the facts about locations and actions of different persons "
            "hidden in some random text and a question.You need to answer the question based "
            "only on the information from the facts.\n"
            "If a person got an item in the first location and travelled to the second location "
            "the item is also in the second location. If a person dropped an item in the first "
            "location and moved to the second location the item remains in the first location.",
        "examples":
            "<example>\n"
            "Charlie went to the kitchen. Charlie got a bottle. Charlie moved to the balcony. "
            "Where is the bottle?\n"
            "Answer: The bottle is in the balcony.\n"
            "</example>\n"
            "<example>\n"
            "Alan moved to the garage. Alan got a screw driver. Alan moved to the kitchen. Where "
            "is the screw driver?\n"
            "Answer: The screw driver is in the kitchen.\n"
            "</example>",
        "post_prompt":
            "Always return your answer in the following format: The \u2019item\u2019 is in "
            "\u2019location\u2019. Do not write anything else after that.",
    },
    "qa3": {
        "instruction":
            "I give you context with the facts about locations and actions of different persons "
            "hidden in some random text and a question. You need to answer the question based "
            "only on the information from the facts.\n"
            "If a person got an item in the first location and travelled to the second location "
            "the item is also in the second location. If a person dropped an item in the first "
            "location and moved to the second location the item remains in the first location.",
        "examples":
            "<example>\n"
            "John journeyed to the bedroom. Mary grabbed the apple. Mary went back to the "
            "bathroom. Daniel journeyed to the bedroom. Daniel moved to the garden. Mary "
            "travelled to the kitchen. Where was the apple before the kitchen?\n"
            "Answer: Before the kitchen the apple was in the bathroom.\n"
            "</example>\n"
            "<example>\n"
            "John went back to the bedroom. John went back to the garden. John went back to the "
            "kitchen. Sandra took the football. Sandra travelled to the garden. Sandra journeyed "
            "to the bedroom. Where was the football before the bedroom?\n"
            "Answer: Before the bedroom the football was in the garden.\n"
            "</example>",
        "post_prompt":
            "Always return your answer in the following format: Before the $location_1$ the "
            "$item$ was in the $location_2$. Do not write anything else after that.",
    },
    "qa4": {
        "instruction":
            "I will give you context with the facts about different people, their location and "
            "actions, hidden in some random text and a question. You need to answer the question "
            "based only on the information from the facts.",
        "examples":
            "<example>\n"
            "The hallway is south of the kitchen. The bedroom is north of the kitchen. What is "
            "the kitchen south of?\n"
            "Answer: bedroom\n"
            "</example>\n"
            "<example>\n"
            "The garden is west of the bedroom. The bedroom is west of the kitchen. What is west "
            "of the bedroom?\n"
            "Answer: garden\n"
            "</example>",
        "post_prompt":
            "Your answer should contain only one word - location. Do not write anything else "
            "after that.",
    },
    "qa5": {
        "instruction":
            "I will give you context with the facts about locations and their relations hidden "
            "in some random text and a question. You need to answer the question based only on "
            "the information from the facts.",
        "examples":
            "<example>\n"
            "Mary picked up the apple there. Mary gave the apple to Fred. Mary moved to the "
            "bedroom. Bill took the milk there. Who did Mary give the apple to?\n"
            "Answer: Fred\n"
            "</example>\n"
            "<example>\n"
            "Jeff took the football there. Jeff passed the football to Fred. Jeff got the milk "
            "there. Bill travelled to the bedroom. Who gave the football?\n"
            "Answer: Jeff\n"
            "</example>\n"
            "<example>\n"
            "Fred picked up the apple there. Fred handed the apple to Bill. Bill journeyed to "
            "the bedroom. Jeff went back to the garden. What did Fred give to Bill?\n"
            "Answer: apple\n"
            "</example>",
        "post_prompt":
            "Your answer should contain only one word. Do not write anything else after that. "
            "Do not explain your answer.",
    },
}


class DataError(ValueError):
    """A local copy that is missing or not in the published format: the message names the file."""


@dataclass(frozen=True)
class Record:
    input: str
    question: str
    target: str


def label(tokens: int) -> str:
    """A length in tokens as the authors name it: 4096 -> `4k`, 1,048,576 -> `1M`."""
    if tokens == 0:
        return "0k"
    if tokens % (1 << 20) == 0:
        return f"{tokens >> 20}M"
    return f"{tokens >> 10}k" if tokens % 1024 == 0 else str(tokens)


def prompt_parts(task: str, record: Record, variant: str = "full") -> tuple[str, str]:
    """The authors' prompt split where the question starts (the reusable prefix, then the
    question): `full` has their instruction, examples and post-prompt; `bare` has none (their
    `instruction_no_examples_no_post_prompt_no` runs). The two parts joined are their
    formatted input exactly."""
    p = PROMPTS[task] if variant == "full" else {"instruction": "", "examples": "",
                                                  "post_prompt": ""}
    marker = "\x00QUESTION\x00"
    head = TEMPLATE.format(context=record.input.strip(), question=marker, **p).strip()
    cut = head.partition(marker)[0].rindex("Question: ")  # the template's, after the input
    whole = TEMPLATE.format(context=record.input.strip(), question=record.question,
                            **p).strip()
    return whole[:cut], whole[cut:]


def metric(task: str, question: str) -> str:
    """The stored metric: the task, and the task's labels the question names (never answers):
    `babilong:qa1` or `babilong:qa5:Fred,milk`. Scoring needs nothing else."""
    named = sorted(x for x in LABELS[task] if x.lower() in question.lower())
    return f"babilong:{task}" + (":" + ",".join(named) if named else "")


def score(target: str, output: str, stored_metric: str) -> float:
    """1.0 when the answer's labels (less the question's) are exactly the target."""
    _, task, *rest = stored_metric.split(":", 2)
    in_question = {x.lower() for x in rest[0].split(",")} if rest else set()
    text = output.lower().split(".")[0]
    for stop in ("<context>", "<example>"):  # their third cut, at "Question", never matches
        text = text.split(stop)[0]           # the lower-cased text: left out
    found = {x.lower() for x in LABELS[task] if x.lower() in text} - in_question
    target = target.lower()
    if "," in target and len(target) > 3:  # several targets (qa8's lists): all, and only them
        return 1.0 if found == set(target.split(",")) else 0.0
    return 1.0 if found == {target} else 0.0


def _checked(path: Path, n: int, row: object) -> Record:
    if not (isinstance(row, dict) and all(isinstance(row.get(k), str)
                                          for k in ("input", "question", "target"))):
        raise DataError(f"{path}: record {n} lacks the string fields input, question and "
                        "target of a BABILong record")
    for k in ("input", "question", "target"):
        if not encodable(row[k]):
            raise DataError(f"{path}: record {n}'s {k} holds a lone surrogate (\\ud800-"
                            "\\udfff), not text")
    return Record(row["input"], row["question"], row["target"])


def _json(path: Path, what: str, data: bytes) -> object:
    """One JSON value, or a one-line DataError (not JSON, nested too deep, a number too long)."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DataError(f"{path}: {what} is not JSON") from None


class _File:
    """One published file, read by record: a 10M-token file holds ~4 GB of text in 100
    records, so JSON Lines and parquet files are indexed and read one record at a time (only a
    JSON array, the small files' other form, is parsed whole)."""

    def __init__(self, path: Path):
        self.path = path
        self._rows: list[Record] | None = None
        self._offsets: list[int] = []
        try:
            if path.suffix == ".parquet":
                self.count = self._parquet().metadata.num_rows
            else:
                self.count = self._index()
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if not self.count:
            raise DataError(f"{path}: holds no records")

    def _parquet(self):
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path)
        except ImportError:
            raise DataError(f"{self.path}: reading parquet needs pyarrow; use the JSON files "
                            "(data/<task>/<length>.json)") from None
        except OSError:
            raise
        except Exception as exc:  # pyarrow's errors for a broken or foreign file
            raise DataError(f"{self.path}: not a BABILong parquet file ({exc})") from None

    def _index(self) -> int:
        """Record offsets of a JSON Lines file; a JSON array is parsed whole instead."""
        with open(self.path, "rb") as fh:
            head = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
            if head.startswith(b"["):
                fh.seek(0)
                rows = _json(self.path, "the file", fh.read())
                if not isinstance(rows, list):
                    raise DataError(f"{self.path}: not a JSON array of records")
                self._rows = [_checked(self.path, n, r) for n, r in enumerate(rows, 1)]
                return len(self._rows)
            fh.seek(0)
            pos = 0
            for line in fh:
                if line.strip():
                    self._offsets.append(pos)
                pos += len(line)
        return len(self._offsets)

    def get(self, index: int) -> Record:
        if self._rows is not None:
            return self._rows[index]
        if self.path.suffix == ".parquet":
            try:
                batches = self._parquet().iter_batches(batch_size=1, columns=[
                    "input", "question", "target"])
                for seen, batch in enumerate(batches):
                    if seen == index:
                        return _checked(self.path, index + 1, batch.to_pylist()[0])
            except DataError:
                raise
            except Exception as exc:  # a column missing, a broken page
                raise DataError(f"{self.path}: not a BABILong parquet file ({exc})") from None
        with open(self.path, "rb") as fh:
            fh.seek(self._offsets[index])
            line = fh.readline()
        return _checked(self.path, index + 1, _json(self.path, f"record {index + 1}", line))

    def check(self, count: int) -> None:
        """Records 1..count read and checked, in one pass: a run refuses a bad record before
        it sends anything, not half-way through."""
        if self._rows is not None:
            return  # checked when parsed
        if self.path.suffix == ".parquet":
            try:
                batches = self._parquet().iter_batches(batch_size=64, columns=[
                    "input", "question", "target"])
                n = 0
                for batch in batches:
                    for row in batch.to_pylist():
                        if n >= count:
                            return
                        n += 1
                        _checked(self.path, n, row)
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"{self.path}: not a BABILong parquet file ({exc})") from None
            return
        with open(self.path, "rb") as fh:
            for index, offset in enumerate(self._offsets[:count]):
                fh.seek(offset)
                _checked(self.path, index + 1, _json(self.path, f"record {index + 1}",
                                                       fh.readline()))


def find(folder: Path, task: str, length: str) -> Path:
    """The published file of one task and length in a local copy."""
    for candidate in (folder / "data" / task / f"{length}.json", folder / task / f"{length}.json",
                      *sorted((folder / length).glob(f"{task}-*.parquet"))):
        if candidate.is_file():
            return candidate
    raise DataError(f"no BABILong file for {task} at {length} in {folder} (looked for "
                    f"data/{task}/{length}.json, {task}/{length}.json and "
                    f"{length}/{task}-*.parquet, as RMT-team/babilong publishes them)")


class Data:
    """A local copy of the published files, each read once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise DataError(f"BABILong data folder not found: {self.folder}")
        self._files: dict[tuple[str, str], _File] = {}

    def _file(self, task: str, tokens: int) -> _File:
        key = (task, label(tokens))
        if key not in self._files:
            self._files[key] = _File(find(self.folder, *key))
        return self._files[key]

    def record(self, task: str, tokens: int, index: int) -> Record:
        f = self._file(task, tokens)
        if index >= f.count:
            raise DataError(f"{f.path} holds {f.count} records; sample {index + 1} was asked "
                            f"for (use --samples {f.count} or fewer)")
        return f.get(index)

    def check(self, task: str, tokens: int, samples: int) -> None:
        """The file of a task and length holds `samples` good records."""
        f = self._file(task, tokens)
        if samples > f.count:
            raise DataError(f"{f.path} holds {f.count} records; {samples} samples were asked "
                            f"for (use --samples {f.count} or fewer)")
        f.check(samples)
