"""RULER parity: run RULER's own data preparation and scoutlens's port side by side on the same
tokenizer and seeds, and compare every prompt.

RULER's scripts are the published ones (tests/fixtures/ruler, NVIDIA/RULER at c3f5e3b, or
--ruler DIR for a checkout), run offline: the tasks whose haystacks need no download (noise,
needle, vt, cwe, fwe), with stand-ins only for imports those paths never call (tenacity, NLTK's
sent_tokenize) and for scipy.special.zeta(2.0) (bit-identical to SciPy's). cwe reads the
git-lfs file json/english_words.json at import and uses it only past ~8K distinct words (about
128K tokens): it is an empty object here, so a length that needed it would fail, not differ.

The downloaded haystacks (essays, SQuAD, HotpotQA) are not here: `--files` builds small ones in
their published layouts and compares the essay and qa tasks on them too; for the essays, RULER's
NLTK sentence splitter is replaced by the port's rule on both sides (SCOUTLENS_RULER_SENTENCES),
so what they check is everything but the splitter.

    python benchmarks/ruler_parity.py --lengths 4096,16384 --samples 5 [--files] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals import ruler  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "ruler"
OFFLINE = ("niah_single_1", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe")
SCRIPT = {"niah": "niah.py", "variable_tracking": "variable_tracking.py",
          "common_words_extraction": "common_words_extraction.py",
          "freq_words_extraction": "freq_words_extraction.py", "qa": "qa.py"}


def write_files(folder: Path, seed: int = 0) -> Path:
    """Small files in the layouts RULER reads: PaulGrahamEssays.json ({"text"}), squad.json
    (SQuAD 2.0: data/paragraphs/qas with is_impossible) and hotpotqa.json (HotpotQA's list
    of question/answer/context [title, sentences])."""
    from evals.haystack import source_text

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    essay = source_text("prose", seed, 200_000).replace(". The", ".\n\nThe", 300)
    (folder / "PaulGrahamEssays.json").write_text(json.dumps({"text": essay}))

    def para(n: int) -> str:
        return source_text("prose", rng.randrange(1 << 30), 60 * n)[: 60 * n].strip()

    articles = []
    for a in range(30):
        paragraphs = []
        for p in range(6):
            context = f"Article {a} part {p}. " + para(8)
            qas = [{"id": f"{a}-{p}-{q}", "question": f"What happened in article {a} part {p}?",
                    "answers": [{"text": context.split(". ")[1][:40], "answer_start": 0}],
                    "is_impossible": q == 1} for q in range(2)]
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": f"Article {a}", "paragraphs": paragraphs})
    (folder / "squad.json").write_text(json.dumps({"version": "v2.0", "data": articles}))
    hotpot = []
    for q in range(60):
        context = [[f"Title {q}-{d}", [para(2) + " ", para(2)]] for d in range(10)]
        hotpot.append({"_id": str(q), "question": f"Which title holds fact {q}?",
                       "answer": context[rng.randrange(10)][0], "context": context,
                       "supporting_facts": [], "type": "bridge", "level": "hard"})
    (folder / "hotpotqa.json").write_text(json.dumps(hotpot))
    return folder


def ruler_records(ruler_dir: Path, task: str, length: int, samples: int, seed: int,
                  tokenizer: str, out: Path, files: Path | None = None) -> list[dict]:
    """What RULER's prepare.py would write for `task`: its script, run with prepare.py's
    arguments and the `base` model template (on a copy with `files` in its json/ folder)."""
    kind, args = ruler.CONFIGS[task]
    family = ruler.FAMILIES[kind]
    if files is not None:
        copy = out / "ruler"
        shutil.copytree(ruler_dir, copy)
        for f in files.iterdir():
            shutil.copy(f, copy / "scripts" / "data" / "synthetic" / "json" / f.name)
        ruler_dir = copy
    command = [sys.executable, str(ruler_dir / "scripts" / "data" / "synthetic" / SCRIPT[kind]),
               "--save_dir", str(out), "--save_name", task, "--subset", "validation",
               "--tokenizer_path", tokenizer, "--tokenizer_type", "hf",
               "--max_seq_length", str(length),
               "--tokens_to_generate", str(family.tokens_to_generate),
               "--num_samples", str(samples), "--random_seed", str(seed),
               "--template", family.template + family.answer_prefix]
    for key, value in args.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURE / "shims"), str(ROOT)]),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "SCOUTLENS_RULER_SENTENCES": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"RULER's {SCRIPT[kind]} failed: {done.stderr[-2000:]}")
    with (out / task / "validation.jsonl").open() as f:
        return [json.loads(line) for line in f]


def compare(task: str, length: int, samples: int, seed: int, tokenizer: str,
            ruler_dir: Path = FIXTURE, files: Path | None = None) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        theirs = ruler_records(ruler_dir, task, length, samples, seed, tokenizer, Path(tmp),
                               files if ruler.needs(task) else None)
        their_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    made = ruler.make(task, length, seed, lambda text: len(tok.tokenize(text)),
                      ruler.Sources(str(files) if files else None))
    ours = [made.record(i) for i in range(samples)]
    our_s = time.perf_counter() - t0
    same, first = 0, None
    for i, (a, b) in enumerate(zip(theirs, ours, strict=True)):
        fields = {"input": (a["input"], b.input), "answer_prefix": (a["answer_prefix"],
                  b.answer_prefix), "outputs": (list(a["outputs"]), list(b.outputs)),
                  "length": (a["length"], b.length)}
        differ = [k for k, (x, y) in fields.items() if x != y]
        if not differ:
            same += 1
        elif first is None:
            x, y = fields[differ[0]]
            a_, b_ = str(x), str(y)
            at = next((j for j, (p, q) in enumerate(zip(a_, b_, strict=False)) if p != q),
                      min(len(a_), len(b_)))
            first = {"sample": i, "fields": differ, "at": at,
                     "ruler": str(x)[max(0, at - 40):at + 40],
                     "ours": str(y)[max(0, at - 40):at + 40]}
    prompt_tokens = [len(tok.tokenize(r.input + r.answer_prefix)) for r in ours]
    return {"task": task, "length": length, "samples": samples, "seed": seed,
            "identical": same, "first_difference": first,
            "prompt_tokens": [min(prompt_tokens), max(prompt_tokens)],
            "ruler_s": round(their_s, 2), "ours_s": round(our_s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(OFFLINE))
    ap.add_argument("--lengths", default="4096,16384")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--seed", type=int, default=ruler.SEED)
    ap.add_argument("--tokenizer", default=str(Path.home() / ".scoutlens" / "models"
                                               / "smollm2-135m-instruct"),
                    help="a Hugging Face tokenizer folder (RULER's --tokenizer_type hf)")
    ap.add_argument("--ruler", type=Path, default=FIXTURE, help="a RULER checkout")
    ap.add_argument("--files", action="store_true",
                    help="also the essay and qa tasks, on small files built in their layouts")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tasks = ruler.TASKS if a.files and a.tasks == ",".join(OFFLINE) else a.tasks.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp) / "files") if a.files else None
        rows = [compare(t, int(n), a.samples, a.seed, a.tokenizer, a.ruler, files)
                for n in a.lengths.split(",") for t in tasks]
    if a.json:
        print(json.dumps(rows, indent=1))
        return
    print("| task | length | haystack | prompts identical | prompt tokens | RULER s | "
          "scoutlens s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["prompt_tokens"]
        hay = {ruler.ESSAY: "built essays, same splitter", None: "none (offline)"}.get(
            ruler.needs(r["task"]), "built file")
        print(f"| {r['task']} | {r['length']:,} | {hay} | {r['identical']}/{r['samples']} | "
              f"{lo:,}-{hi:,} | {r['ruler_s']} | {r['ours_s']} |")
        if r["first_difference"]:
            print(f"|   first difference | {json.dumps(r['first_difference'])} |")


if __name__ == "__main__":
    main()
