"""The plain-word question set of benchmarks/bench_plain.py is what it says: enough questions
over enough packages, none carrying an identifier of the line that answers it, each line still
there in the installed packages and standard library."""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(HERE))

from bench_plain import load_questions, locate  # noqa: E402

#: a word written as code: snake_case, camelCase, ALL_CAPS
CODE = re.compile(r"\b\w*_\w*\b|\b[a-z]+[A-Z]\w*\b|\b[A-Z]{2,}[a-z]*\b")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def test_enough_questions_over_enough_packages_in_both_corpora():
    qs = load_questions()
    assert len(qs) >= 60
    assert len({(q["corpus"], q["package"]) for q in qs}) >= 30
    assert {q["corpus"] for q in qs} == {"site", "stdlib"}
    assert sum(q["dev"] for q in qs) < len(qs) / 3  # most are held out


def test_no_question_names_code_or_an_identifier_of_its_answering_line():
    for q in load_questions():
        assert not CODE.search(q["question"]), q["question"]
        asked = {w.lower() for w in IDENT.findall(q["question"])}
        code = re.sub(r"([\'\"]).*?\1", "", q["text"])  # literals are no identifiers
        named = {w.lower() for w in IDENT.findall(code)
                 if "_" in w.strip("_") or re.search(r"[a-z][A-Z]|[A-Z]{2}", w)}
        assert not asked & named, (q["question"], asked & named)


def test_each_answering_line_is_in_the_installed_text():
    roots = {"site": Path(sysconfig.get_paths()["purelib"]),
             "stdlib": Path(sysconfig.get_paths()["stdlib"])}
    missing = [f"{q['path']}:{q['line']}" for q in load_questions()
               if locate(roots[q["corpus"]], q["path"], q["line"], q["text"]) is None]
    assert not missing, missing
