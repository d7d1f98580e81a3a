"""Haystacks from the user's own ingested corpus, and needles by modality: a function in one file
of a repository, a fact on one page of a PDF, text on one video frame. Each sample: the answer is
in the prompt, inside the unit the depth asked for, and the length is exact."""

from __future__ import annotations

import re

import pytest
from helpers import WORDS, make_code_repo, make_pdf, make_video, prose

from app.services.ingesting import ingest
from app.services.snapshot import load_documents
from evals.corpus import render
from evals.tasks import Generator
from ingest.tokenizers import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("cl100k")


def gen_for(tok, corpus: str) -> Generator:
    _, docs = load_documents(corpus)
    return Generator(tok.encode, tok.decode, render(corpus, docs))


def enclosing(context: str, at: int) -> str:
    """The `<source ...>` open tag the offset `at` sits inside."""
    start = context.rindex("<source ", 0, at)
    assert context.find("</source>", start, at) == -1, "the needle is outside any source"
    return context[start:context.index(">", start) + 1]


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_a_function_planted_in_one_file_of_a_repository(tmp_path, tok, depth):
    ingest([make_code_repo(tmp_path)], "repo", tokenizer="cl100k")
    gen = gen_for(tok, "repo")
    s = gen.sample("code", 2048, depth, seed=1)
    assert abs(gen.count(s.prompt) - 2048) <= 2
    name = re.search(r"function (\w+) return", s.question).group(1)
    planted = f"def {name}():\n    return {s.answers[0]}\n"
    at = s.context.index(planted)
    assert s.context.count(name) == 1  # once, in one file
    tag = enclosing(s.context, at)
    assert f'path="{s.meta["where"]}"' in tag and 'language="python"' in tag
    # at a top-level boundary: the line before is blank (or the file's first line)
    assert s.context[:at].endswith(("\n\n", ">\n"))
    assert abs(at / len(s.context) - depth) < 0.12  # files are ~6% of the haystack each
    # the same needle and haystack at every depth: only the place changes
    other = gen.sample("code", 2048, 0.5 if depth != 0.5 else 0.0, seed=1)
    assert other.answers == s.answers


def test_a_fact_on_one_page_of_a_pdf(tmp_path, tok):
    pages = [f"Chapter {i + 1}\n{prose(i, 70)}" for i in range(24)]
    make_pdf(tmp_path / "manual.pdf", pages)
    # PyMuPDF's insert_text writes one line per call: the text is on the page, unwrapped
    ingest([tmp_path / "manual.pdf"], "manual", tokenizer="cl100k")
    gen = gen_for(tok, "manual")
    found = {}
    for depth in (0.0, 0.3, 0.7, 1.0):
        s = gen.sample("pdf", 4096, depth, seed=2)
        assert abs(gen.count(s.prompt) - 4096) <= 2
        at = s.context.index(f"The inspection reference number is {s.answers[0]}.")
        tag = enclosing(s.context, at)
        page = int(re.search(r'page="(\d+)"', tag).group(1))
        assert s.meta["where"] == f"manual.pdf p.{page}"
        assert abs(at / len(s.context) - depth) < 0.08
        found[depth] = page
    # the pages in the window go in order: deeper needles land on later pages
    assert found[0.0] == 1 and found[0.0] < found[0.3] < found[0.7] < found[1.0]


def test_text_on_one_video_frame(tmp_path, tok):
    slides = [f"Slide {i + 1} {WORDS[i]} {WORDS[i + 3]}" for i in range(8)]
    folder = tmp_path / "talks"
    folder.mkdir()
    make_video(folder / "talk.mp4", slides, seconds_each=2, fps=4)
    (folder / "notes.md").write_text("\n\n".join(prose(i, 50) for i in range(4)) + "\n")
    ingest([folder], "talks", tokenizer="cl100k")
    gen = gen_for(tok, "talks")
    assert gen.corpus is not None and len(gen.corpus.spans_of("video")) >= 6
    for depth in (0.0, 0.5, 1.0):
        s = gen.sample("video", 1024, depth, seed=3)
        assert abs(gen.count(s.prompt) - 1024) <= 2
        needle = f" ACCESS CODE {s.answers[0]}</frame>"
        at = s.context.index(needle)
        frame = s.context.rindex("<frame t=", 0, at)
        t = re.match(r'<frame t="([\d:.]+)"', s.context[frame:]).group(1)
        assert s.meta["where"] == f"talk.mp4 @{t[:-4]}"
        assert 'media="video"' in enclosing(s.context, at)
        assert s.context.count("ACCESS CODE") == 1
    assert "notes.md" in s.context  # the rest of the corpus is the haystack around it


def test_plain_needles_in_a_corpus_and_its_errors(tmp_path, tok):
    ingest([make_code_repo(tmp_path, files=4)], "small", tokenizer="cl100k")
    gen = gen_for(tok, "small")
    s = gen.sample("niah", 4096, 0.5, seed=0)  # a corpus shorter than the length is repeated
    assert abs(gen.count(s.prompt) - 4096) <= 2 and s.meta["needle"] in s.context
    assert s.context.count('path="pkg/mod_00.py"') >= 2
    with pytest.raises(ValueError, match="no PDF pages"):
        gen.sample("pdf", 2048, 0.5)
    plain = Generator(tok.encode, tok.decode)
    with pytest.raises(ValueError, match="--haystack CORPUS"):
        plain.sample("code", 2048, 0.5)
