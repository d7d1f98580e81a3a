"""The lexical index: code-aware terms, ranking, saving and loading, damage."""

from __future__ import annotations

from ingest.retrieval import SegmentIndex, query_terms, terms

SEGMENTS = [
    (10, "ingest/pack.py", "class Packer:\n    def plan(self, docs): ...\n"),
    (11, "ingest/tokenizers.py", "def load_tokenizer(spec):\n    return TokenizerCache(spec)\n"),
    (12, "README.md", "The vault code is 7291. Deploy to eu-west-3.\n"),
    (13, "docs/weather.md", "The weather was mild and grey all week.\n"),
]


def test_terms_split_identifiers_and_questions_drop_stopwords():
    t = terms("def load_tokenizer(spec): return PackResult()")
    assert {"load", "tokenizer", "packresult", "result", "spec"} <= set(t)
    assert "the" in terms("the vault") and "the" not in query_terms("the vault")


def test_search_ranks_the_right_segment_and_survives_a_round_trip(tmp_path):
    index = SegmentIndex.build(SEGMENTS)
    assert index.search("Where is load_tokenizer defined?")[0].segment == 11
    assert index.search("what is the vault code")[0].segment == 12
    assert index.search("packer")[0].segment == 10  # the path counts as text
    assert index.search("zebra") == [] and index.search("the of") == []
    index.save(tmp_path / "idx")
    again = SegmentIndex.load(tmp_path / "idx")
    assert again is not None and again.search("tokenizer cache")[0].segment == 11
    (tmp_path / "idx" / "segments.json").write_text("{broken")
    assert SegmentIndex.load(tmp_path / "idx") is None  # damaged: rebuilt by the caller
    assert SegmentIndex.load(tmp_path / "missing") is None


def test_an_empty_corpus_indexes_and_finds_nothing(tmp_path):
    empty = SegmentIndex.build([])
    empty.save(tmp_path / "e")
    loaded = SegmentIndex.load(tmp_path / "e")
    assert loaded is not None and loaded.search("anything") == []


def test_many_writers_of_the_same_index_at_once_all_succeed(tmp_path):
    """Two asks about a corpus whose index is missing both build it; neither may fail."""
    from concurrent.futures import ThreadPoolExecutor

    rows = [(i, f"src/m{i}.py", f"def handler_{i}(): return {i}\n" * 20) for i in range(300)]
    folder = tmp_path / "indexes" / "c" / "v1"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: SegmentIndex.build(rows).save(folder), range(16)))
    index = SegmentIndex.load(folder)
    assert index is not None and index.search("handler_17")[0].segment == 17
    assert [p.name for p in folder.parent.iterdir()] == ["v1"]  # no temporary folder left
