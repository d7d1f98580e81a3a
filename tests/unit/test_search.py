"""Ranked retrieval on a corpus shaped like the one that broke it: many files defining ordinary
names (`value`, `file`, `get`) in corpus order before the one rare definition a question asks
for; `scoutlens search` and `ask --dry-run` as a user runs them."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedBackend
from helpers import context_of
from helpers import make_site_corpus as _corpus

from app.services.ask import AskInput, prepare
from app.services.history import history
from app.services.ingesting import ingest
from app.services.search import search
from app.services.snapshot import open_snapshot
from common.errors import UserError


@pytest.fixture
def corpus(tmp_path) -> str:
    ingest([_corpus(tmp_path / "site")], "site")
    return "site"


def test_a_rare_definition_outranks_ordinary_names_defined_everywhere(corpus):
    hits = search(corpus, "In which file is the function get_best_fit defined?", k=5).hits
    assert hits[0].segment.path.endswith("vision/image_processing.py")
    assert "symbol" in hits[0].signals and hits[0].signals["symbol"] == 1
    constant = search(corpus, "What is the value of DEFAULT_MAX_RETRIES in the zzz_client "
                      "package?", k=5).hits
    assert constant[0].segment.path == "zzz_client/_constants.py"
    assert {"bm25", "path"} <= set(constant[0].signals)


def test_the_context_holds_the_answer_where_bm25_alone_may_not(corpus):
    """On an 8K-token budget the fused ranking puts both places in the context; the pieces are
    laid out in corpus order and the context says which signals found each."""
    backend = ScriptedBackend(window=2048)
    for question, path in [
            ("In which file is the function get_best_fit defined?",
             "zzz_client/models/vision/image_processing.py"),
            ("What is the value of DEFAULT_MAX_RETRIES in the zzz_client package?",
             "zzz_client/_constants.py")]:
        ctx = context_of(corpus, question, "retrieval", backend, 256)
        data = ctx.to_json()
        assert path in [s["path"] for s in data["sources"]], data["sources"]
        assert data["prompt_tokens"] + 256 <= 2048  # counted as the toy tokenizer counts
        assert data["prompt_tokens"] == backend.tokenizer().count_request(ctx.request).tokens
        positions = [s["path"] for s in data["sources"]]
        assert positions == sorted(positions)  # corpus order (paths sort as the corpus does)
        assert all(h["signals"] for h in data["hits"])


def test_only_common_words_and_a_missing_corpus_say_why(corpus):
    empty = search(corpus, "what is the of and")
    assert empty.hits == [] and "only common words" in empty.notes[0]
    with pytest.raises(UserError, match="no such corpus"):
        search("nope", "get_best_fit")


def test_an_index_of_an_older_format_is_rebuilt_with_a_note(corpus):
    from app.services.catalog import corpus_version
    from app.services.index import index_dir

    folder = index_dir(corpus, corpus_version(corpus))
    (folder / "segments.json").write_text(json.dumps([1, 2, 3]))  # format 1: a bare id list
    ranking = search(corpus, "get_best_fit")
    assert ranking.hits and "older format" in ranking.notes[0]
    assert json.loads((folder / "segments.json").read_text())["format"] >= 2


def test_dry_run_sends_nothing_and_stores_nothing(corpus):
    backend = ScriptedBackend(window=2048)
    with open_snapshot(corpus) as snap:
        ready = prepare(snap, AskInput(corpus, "In which file is the function get_best_fit "
                                       "defined?", max_tokens=256), backend)
        assert backend.requests == [] and history(corpus) == []
        assert "def get_best_fit(" in ready.context.to_json(with_text=True)["context"]
        with pytest.raises(UserError, match="no such conversation"):
            prepare(snap, AskInput(corpus, "and then?", conversation="nope"), backend)


def test_a_huge_or_hostile_query_is_refused_or_bounded(corpus):
    with pytest.raises(UserError, match="the limit is 4,000"):
        search(corpus, "get_best_fit " * 400)
    # 3,900 characters of distinct identifiers: looked up in bounded batches, still ranked
    many = " ".join(f"name_{i}" for i in range(500))[:3_900] + " get_best_fit"
    assert search(corpus, many, k=3).hits
    search(corpus, "<script>'; DROP TABLE segments; -- \x00 \u202e", k=3)  # data, not SQL
    assert search(corpus, "get_best_fit", k=1).hits[0].segment.path.endswith("processing.py")


def test_named_places_from_the_file_table_match_the_database(tmp_path):
    """The loaded index's file table stands in for reading every path from the database: the
    same files and folders are named either way, and a question naming none reads neither."""
    from app.services.index import load_index
    from app.services.search import named_sources

    root = _corpus(tmp_path / "site", packages=4)
    (root / "aaa_pkg01" / "zzz_client").mkdir()  # a folder part repeated deeper counts again
    (root / "aaa_pkg01" / "zzz_client" / "pack.py").write_text("x = 1\n")
    ingest([root], "site")
    questions = ["What is the value of DEFAULT_MAX_RETRIES in the zzz_client package?",
                 "What does _constants.py hold?", "What is in the mod1 module?",
                 "Where does the vision folder resize images?", "How are retries timed?"]
    with open_snapshot("site") as snap:
        files = load_index(snap).files
        for question in questions:
            assert named_sources(snap, question, files) == named_sources(snap, question)
        segments, folders = named_sources(snap, questions[0], files)
        assert folders == {"zzz_client"} and segments == []
        segments, _ = named_sources(snap, questions[1], files)
        assert len(segments) == 1
        assert len(named_sources(snap, questions[2], files)[0]) == 4  # 4 files, 5 at most
        assert named_sources(snap, questions[4], ["x"]) == ([], set())
        # a file name may hold a newline: what follows it is no folder
        assert named_sources(snap, "What is in the openai package?",
                             ["a\nopenai/x.py", "b/y.py"]) == ([], set())


def test_named_paths_found_in_the_joined_paths_as_a_loop_over_them_finds_them():
    """named_paths searches the NUL-joined paths in C; a plain loop over every path, with the
    same rules, names the same files in the same order (random corpora and questions)."""
    import random

    from app.services.search import _NAME_TOKEN, _modules, named_paths

    def loop(paths, lowered, words, modules):
        names = {t.rstrip(".") for t in _NAME_TOKEN.findall(lowered)}
        return [p for p in paths if (base := p.rsplit("/", 1)[-1]).lower() in names
                and "." in base or base.split(".")[0].lower() in words or p in modules][:5]

    rnd = random.Random(31)
    parts = ["util", "Util", "pack", "io", "a.b", "email", "base64mime", "util.d", "İx", "pack.py"]
    said = ["where", "is", "util", "pack.py", "pack.py?", "a.b.py", "email.base64mime", "io.txt.",
            "util.d", "x.tar.gz", "s.py", "src/pack.py", "'io.py'", "İx.py"]
    for _ in range(800):
        paths = list(dict.fromkeys(
            "/".join(rnd.choice(parts) for _ in range(rnd.randint(1, 4)))
            + rnd.choice(["", ".py", ".PY", ".txt", ".tar.gz"]) for _ in range(rnd.randint(1, 30))))
        question = " ".join(rnd.choice(said) for _ in range(rnd.randint(1, 7)))
        words = {w for w in ("util", "pack", "io", "email") if rnd.random() < 0.3}
        modules = _modules(question) | ({rnd.choice(paths)} if rnd.random() < 0.2 else set())
        joined = "\0".join(paths)
        assert named_paths(paths, joined, joined.lower(), question.lower(), words, modules) \
            == loop(paths, question.lower(), words, modules), (paths, question, words)
    # a name inside a longer word names nothing; a stem starting a folder's name is no file's
    paths = ["s.py", "tools.py", "util.d/readme", "a/util.d/util.py"]
    joined = "\0".join(paths)
    assert named_paths(paths, joined, joined.lower(), "what is tools.py for?", set(),
                       set()) == ["tools.py"]
    assert named_paths(paths, joined, joined.lower(), "the util module", {"util"},
                       set()) == ["a/util.d/util.py"]
    for said in ("is **tools.py** used?", "tools.py's job", "in |tools.py|", "see tools.py…"):
        assert named_paths(paths, joined, joined.lower(), said, set(), set()) == ["tools.py"]
