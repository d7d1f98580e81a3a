"""What each published suite reads, where its authors publish it, and whether a local copy is
usable: `scoutlens eval data [DIR]`. Nothing is downloaded; a copy is checked by reading it the
way a run reads it (the first record of each file), so a wrong file is named before a run."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evals import babilong, longbench, mrcr, ruler


@dataclass(frozen=True)
class Need:
    suite: str
    path: str  # under the data folder; a glob for a file per length or part
    what: str
    source: str  # where its authors publish it
    sha256: str = ""  # the published file's, where its publisher states it
    tasks: str = ""


NEEDS = (
    Need("ruler", "PaulGrahamEssays.json", "the essay haystack (niah_single_2-3, "
         "niah_multikey_1, niah_multivalue, niah_multiquery)",
         "RULER's scripts/data/synthetic/json/download_paulgraham_essay.py writes it",
         tasks="ruler-niah_single_2 ..."),
    Need("ruler", "squad.json", "SQuAD 2.0 dev (qa_1)",
         "rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json", tasks="ruler-qa_1"),
    Need("ruler", "hotpotqa.json", "HotpotQA dev, distractor setting (qa_2)",
         "curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json", tasks="ruler-qa_2"),
    Need("ruler", "english_words.json", "cwe's words past wonderwords' list (about 128K "
         "tokens and longer)", "github.com/NVIDIA/RULER scripts/data/synthetic/json (git-lfs)",
         "affcd6d45fdf3cc843d585c99c97ad615094e760e6c4756b654bab6c73bc2eca", "ruler-cwe"),
    Need("babilong", "data/qa*/*.json or */qa*.parquet", "qa1-qa5 at each length",
         "huggingface.co/datasets/RMT-team/babilong", tasks="babilong"),
    Need("longbench-v2", "data.json", "503 records with their contexts",
         "huggingface.co/datasets/THUDM/LongBench-v2", tasks="longbench-v2[-cot|-nocontext]"),
    Need("mrcr", "{2,4,8}needle/*.parquet", "the conversations, 2, 4 and 8 needles",
         "huggingface.co/datasets/openai/mrcr", tasks="mrcr"),
)


@dataclass(frozen=True)
class Check:
    need: Need
    status: str  # ok | missing | wrong
    detail: str


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ruler_file(name: str) -> Callable[[Path], str]:
    def check(folder: Path) -> str:
        data = ruler.Sources(str(folder)).json(name, "check")
        if name == ruler.ESSAY and not (isinstance(data, dict)
                                         and isinstance(data.get("text"), str)):
            raise ValueError(f"{folder / name}: no \"text\" string")
        if name == "squad.json":
            qas, _ = ruler._read_squad(data)
            return f"{len(qas):,} answerable questions"
        if name == "hotpotqa.json":
            qas, _ = ruler._read_hotpotqa(data)
            return f"{len(qas):,} questions"
        if name == "english_words.json" and not isinstance(data, dict):
            raise ValueError(f"{folder / name}: not a JSON object of words")
        return f"{len(data.get('text', '')):,} characters" if name == ruler.ESSAY else \
            f"{len(data):,} entries"
    return check


def _babilong(folder: Path) -> str:
    found = []
    for qa in babilong.TASKS:
        for length in babilong.PUBLISHED:
            try:
                path = babilong.find(folder, qa, length)
            except babilong.DataError:
                continue
            babilong._File(path).check(1)  # the first record read as a run reads it
            found.append(f"{qa}/{length}")
    if not found:
        raise FileNotFoundError("no qa1-qa5 file at any published length")
    more = " ..." if len(found) > 6 else ""
    return f"{len(found)} task-length files: {', '.join(found[:6])}{more}"


def _longbench(folder: Path) -> str:
    data = longbench.Data(str(folder))
    return f"{len(data.items)} records"


def _mrcr(folder: Path) -> str:
    data = mrcr.Data(str(folder))
    found = []
    for n in mrcr.NEEDLES:
        try:
            files = data.files(n)
        except mrcr.MRCRError:
            continue
        import pyarrow.parquet as pq

        for f in files:
            try:
                names = set(pq.ParquetFile(f).schema_arrow.names)
            except Exception as exc:  # pyarrow's errors for a file that is not parquet
                raise ValueError(f"{f}: not a parquet file MRCR publishes "
                                 f"({type(exc).__name__})") from None
            lack = {"prompt", "answer", "random_string_to_prepend"} - names
            if lack:
                raise ValueError(f"{f}: lacks the columns {', '.join(sorted(lack))}")
        found.append(f"{n} needles: {len(files)} files")
    if not found:
        raise FileNotFoundError("no {2,4,8}needle parquet files")
    return "; ".join(found)


CHECKS: dict[str, Callable[[Path], str]] = {
    "PaulGrahamEssays.json": _ruler_file("PaulGrahamEssays.json"),
    "squad.json": _ruler_file("squad.json"),
    "hotpotqa.json": _ruler_file("hotpotqa.json"),
    "english_words.json": _ruler_file("english_words.json"),
    "data/qa*/*.json or */qa*.parquet": _babilong,
    "data.json": _longbench,
    "{2,4,8}needle/*.parquet": _mrcr,
}


def check(folder: str) -> list[Check]:
    """Each need against `folder`: ok (with what was found), missing, or wrong (one line)."""
    root = Path(folder).expanduser()
    out = []
    for need in NEEDS:
        single = "*" not in need.path and "{" not in need.path
        if single and not (root / need.path).is_file():
            out.append(Check(need, "missing", f"no {root / need.path}"))
            continue
        try:
            detail = CHECKS[need.path](root)
        except FileNotFoundError as exc:
            out.append(Check(need, "missing", str(exc).splitlines()[0][:200]))
            continue
        except (ValueError, OSError) as exc:
            out.append(Check(need, "wrong", str(exc).splitlines()[0][:300]))
            continue
        if single and need.sha256:
            digest = sha256(root / need.path)
            if digest != need.sha256:
                out.append(Check(need, "wrong", f"{root / need.path}: sha256 {digest[:16]}... "
                                                f"is not the published {need.sha256[:16]}..."))
                continue
            detail += "; sha256 as published"
        out.append(Check(need, "ok", detail))
    return out
