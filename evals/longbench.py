"""LongBench v2 (Bai et al., 2024: 503 multiple-choice questions over real long texts, code
repositories among them) from its published data file, prompted, truncated and scored the way
its authors' pred.py and result.py do, so a score sits beside their leaderboard.

Source: github.com/THUDM/LongBench at 2e00731 (MIT): `prompts/0shot.txt`, `0shot_cot.txt`,
`0shot_cot_ans.txt`, `0shot_no_context.txt` (below word for word), `pred.py` (the prompt, the
truncation, the two calls of chain-of-thought, extract_answer) and `result.py` (accuracy overall,
easy, hard, short, medium, long). Data: the Hugging Face dataset THUDM/LongBench-v2, its
`data.json` (a JSON array of records with _id, domain, sub_domain, difficulty, length, question,
choice_A-D, answer, context), never downloaded here.

A cell's length is pred.py's `max_len`: a prompt longer than that many tokens keeps its first and
last halves (the middle goes), as the authors truncate to the window. Three tasks:
`longbench-v2` (0-shot, 128 answer tokens), `longbench-v2-cot` (a 1,024-token chain of thought,
then the answer asked in a second call of 128 tokens, the document left out of it), and
`longbench-v2-nocontext` (the question alone: what the model knows without reading).
Differences, on purpose: answers are greedy (pred.py samples at temperature 0.1), so a run is
repeatable; tokens are counted without the BOS token a Hugging Face `encode` adds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from common.text import encodable

COMMIT = "2e00731"
FILE = "data.json"
TASKS = ("longbench-v2", "longbench-v2-cot", "longbench-v2-nocontext")

ZERO_SHOT = (
    "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n"
    "(C) $C_C$\n(D) $C_D$\n\n"
    'Format your response as follows: "The correct answer is (insert answer here)".')
COT = (
    "Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n"
    "(C) $C_C$\n(D) $C_D$\n\nLet\u2019s think step by step:")
COT_ANSWER = (
    "Please read the following text and answer the questions below.\n\nThe text is too long and "
    "omitted here.\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n"
    "(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nLet\u2019s think step by step: $COT$\n\nBased on the "
    "above, what is the single, most likely answer choice? Format your response as follows: "
    '"The correct answer is (insert answer here)".')
NO_CONTEXT = (
    "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n"
    "(C) $C_C$\n(D) $C_D$\n\nWhat is the single, most likely answer choice? Format your "
    'response as follows: "The correct answer is (insert answer here)".')
ANSWER_TOKENS = 128
COT_TOKENS = 1024
FIELDS = ("_id", "difficulty", "length", "question", "choice_A", "choice_B", "choice_C",
          "choice_D", "answer", "context")


class LongBenchError(ValueError):
    """The data file is missing or not LongBench v2's."""


@dataclass(frozen=True)
class Item:
    id: str
    difficulty: str  # easy | hard
    length: str  # short | medium | long
    question: str
    choices: tuple[str, str, str, str]
    answer: str  # A-D
    context: str


def fill(template: str, item: Item, context: str = "", cot: str = "") -> str:
    """pred.py's replacements, in its order (so a `$Q$` inside a document stays text)."""
    a, b, c, d = (x.strip() for x in item.choices)
    out = (template.replace("$DOC$", context.strip()).replace("$Q$", item.question.strip())
           .replace("$C_A$", a).replace("$C_B$", b).replace("$C_C$", c).replace("$C_D$", d))
    return out.replace("$COT$", cot) if cot else out


def truncate(prompt: str, max_len: int, encode, decode) -> str:
    """pred.py's query_llm: over `max_len` tokens, the first and last halves are kept."""
    ids = encode(prompt)
    if len(ids) <= max_len:
        return prompt
    return decode(ids[:max_len // 2] + ids[-max_len // 2:])


def extract_answer(response: str) -> str | None:
    """pred.py's extract_answer: the letter after "The correct answer is", bold marks dropped."""
    response = response.replace("*", "")
    match = re.search(r"The correct answer is \(([A-D])\)", response)
    if match:
        return match.group(1)
    match = re.search(r"The correct answer is ([A-D])", response)
    return match.group(1) if match else None


def metric(item: Item) -> str:
    """What a stored cell needs to be scored and reported again: `longbench2:DIFFICULTY:LENGTH`
    (the letter is the cell's answer)."""
    return f"longbench2:{item.difficulty}:{item.length}"


def score(answer: str, response: str) -> float:
    return 1.0 if extract_answer(response) == answer else 0.0


class Data:
    """`data.json` read once: LongBench v2's 503 records, each checked for its fields."""

    def __init__(self, folder: str):
        self.path = Path(folder).expanduser() / FILE
        if not Path(folder).expanduser().is_dir():
            raise LongBenchError(f"LongBench v2 data folder not found: {folder}")
        if not self.path.is_file():
            raise LongBenchError(f"{self.path}: no such file (LongBench v2's data.json from "
                                 "the Hugging Face dataset THUDM/LongBench-v2)")
        try:
            with self.path.open(encoding="utf-8") as f:
                records = json.load(f)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise LongBenchError(f"{self.path}: not LongBench v2's JSON ({str(exc)[:120]})"
                                 ) from None
        if not isinstance(records, list) or not records:
            raise LongBenchError(f"{self.path}: not a JSON array of records")
        self.items = [self._item(i, r) for i, r in enumerate(records)]

    def _item(self, i: int, r) -> Item:
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in FIELDS):
            raise LongBenchError(f"{self.path}: record {i + 1} lacks the string fields "
                                 f"{', '.join(FIELDS)}")
        if r["answer"] not in ("A", "B", "C", "D"):
            raise LongBenchError(f"{self.path}: record {i + 1}: answer {r['answer'][:20]!r} is "
                                 "not A-D")
        if r["difficulty"] not in ("easy", "hard") or r["length"] not in ("short", "medium",
                                                                          "long"):
            raise LongBenchError(f"{self.path}: record {i + 1}: difficulty "
                                 f"{r['difficulty'][:20]!r} and length {r['length'][:20]!r} are "
                                 "not easy|hard and short|medium|long")
        if not encodable([r[k] for k in FIELDS]):
            raise LongBenchError(f"{self.path}: record {i + 1}: text that is not Unicode (a "
                                 "lone surrogate)")
        return Item(r["_id"], r["difficulty"], r["length"], r["question"],
                    (r["choice_A"], r["choice_B"], r["choice_C"], r["choice_D"]), r["answer"],
                    r["context"])

    def item(self, index: int) -> Item:
        if index >= len(self.items):
            raise LongBenchError(f"{self.path} holds {len(self.items)} records; sample "
                                 f"{index + 1} was asked for")
        return self.items[index]


def results(rows: list[tuple[str, str, float]]) -> dict[str, float | None]:
    """result.py's row from (difficulty, length, score) per answered item: accuracy x 100
    rounded to 1, overall and per group (None for a group with no item)."""
    def acc(sel: list[float]) -> float | None:
        return round(100 * sum(sel) / len(sel), 1) if sel else None

    return {"Overall": acc([s for _, _, s in rows]),
            "Easy": acc([s for d, _, s in rows if d == "easy"]),
            "Hard": acc([s for d, _, s in rows if d != "easy"]),
            "Short": acc([s for _, n, s in rows if n == "short"]),
            "Medium": acc([s for _, n, s in rows if n == "medium"]),
            "Long": acc([s for _, n, s in rows if n not in ("short", "medium")])}


HEAD = "Model\tOverall\tEasy\tHard\tShort\tMedium\tLong"


def result_txt(rows: list[tuple[str, dict[str, float | None]]]) -> str:
    """result.py's result.txt: its tab-separated header and a line per (model, row); a group
    with no item is empty (result.py would divide by zero)."""
    lines = ["\t".join([m, *("" if v is None else str(v) for v in row.values())])
             for m, row in rows]
    return "\n".join([HEAD, *lines])
