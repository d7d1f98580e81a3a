"""The lexical index: code-aware terms, ranking, saving and loading, damage."""

from __future__ import annotations

from helpers import index_of, segments_of

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


def test_a_re_ingest_keeps_the_unchanged_segments_terms_and_ranks_as_a_full_build(
        tmp_path, scoutlens_home):
    """After a re-ingest that changed one file of many, the index of the new version takes the
    other files' terms from the previous one (their text is not read again) and answers exactly
    as an index built from scratch."""
    from app.services.catalog import corpus_version
    from app.services.index import build_index_of, index_dir, remove_indexes
    from app.services.ingesting import ingest

    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"mod{i}.py").write_text(
            f"def handler_{i}(request):\n    '''Serve the {i}th kind of request.'''\n"
            f"    return respond(request, code={i})\n")
    ingest([src], "shop")
    first = corpus_version("shop")
    (src / "mod7.py").write_text("def refund_order(order):\n    return order.cancel()\n")
    report = ingest([src], "shop")
    second = corpus_version("shop")
    assert second != first and not index_dir("shop", first).exists()  # the old one is gone
    assert any("kept the terms of 39 of 40 segments" in n for n in report.notes), report.notes
    kept = index_of("shop")
    queries = ("refund order", "handler_12 request", "serve the 7th kind", "respond code")
    before = {q: [(h.segment, round(h.score, 4)) for h in kept.search(q)] for q in queries}
    remove_indexes("shop")  # then built from scratch
    notes: list[str] = []
    build_index_of("shop", note=notes.append)
    assert not any("kept the terms" in n for n in notes)
    fresh = index_of("shop")
    for q in queries:
        assert before[q] == [(h.segment, round(h.score, 4)) for h in fresh.search(q)], q
    assert kept.search("refund order")[0].segment == fresh.search("refund_order")[0].segment
    # the reused rows keep their files too: a scoped search answers alike
    assert kept.files == fresh.files and list(kept.file_of) == list(fresh.file_of)
    assert kept.files[kept.file_of[kept.ids.index(kept.search("refund order")[0].segment)]] \
        == "mod7.py"


def test_the_reused_terms_are_told_and_a_mostly_new_corpus_is_built_whole(tmp_path,
                                                                          scoutlens_home):
    from app.services.catalog import corpus_version
    from app.services.index import build_index_of
    from app.services.ingesting import ingest

    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.txt").write_text(f"paragraph {i} about topic {i}\n")
    ingest([src], "notes")
    # the last file's segment has the highest id: SQLite gives its replacement the same id,
    # so the terms are matched by content, never by id
    (src / "f9.txt").write_text("a new paragraph about kites\n")
    report = ingest([src], "notes")
    assert report.version_hash == corpus_version("notes")
    assert any("kept the terms of 9 of 10 segments" in n for n in report.notes), report.notes
    index = index_of("notes")
    [kites] = segments_of("notes", [h.segment for h in index.search("kites")])
    assert kites.path == "f9.txt" and "kites" in kites.text
    assert kites.id not in {h.segment for h in index.search("topic")}  # the old text's
    notes: list[str] = []
    build_index_of("notes", note=notes.append)  # the same version again: keeps all its terms
    assert any("kept the terms of 10 of 10 segments" in n for n in notes), notes
    for i in range(10):
        (src / f"f{i}.txt").write_text(f"completely different text {i}\n")
    whole = ingest([src], "notes")  # all new: streamed and built from scratch
    assert not any("kept the terms" in n for n in whole.notes), whole.notes


def test_a_search_scoped_to_some_files_ranks_only_theirs_and_survives_a_round_trip(tmp_path):
    index = SegmentIndex.build(SEGMENTS + [(14, "docs/vault.md", "Where the vault code lives.")])
    assert index.files == ["ingest/pack.py", "ingest/tokenizers.py", "README.md",
                           "docs/weather.md", "docs/vault.md"]
    assert sorted(h.segment for h in index.search("vault code")) == [12, 14]
    assert [h.segment for h in index.search("vault code", within={4})] == [14]
    assert index.search("vault code", within=set()) == []
    index.save(tmp_path / "idx")
    again = SegmentIndex.load(tmp_path / "idx")
    assert again.files == index.files
    assert [h.segment for h in again.search("vault code", within={4})] == [14]
    assert len(again.rows_with("vault")) == 2 and len(again.rows_with("zebra")) == 0


def test_stems_let_a_plural_or_a_verb_form_meet_the_code():
    index = SegmentIndex.build([(1, "a.py", "def close_connection(conn): ..."),
                                (2, "b.py", "the weather report")])
    assert index.search("closing connections")[0].segment == 1


def test_a_question_rebuilding_its_version_leaves_a_newer_index(tmp_path, scoutlens_home):
    """A question reads one snapshot: when its version's index is gone (an ingest that landed
    meanwhile removed it), it is rebuilt from that snapshot's rows, and the newer version's
    index the ingest just built stays."""
    from app.services.catalog import corpus_version
    from app.services.index import index_dir, load_index
    from app.services.ingesting import ingest
    from app.services.snapshot import open_snapshot

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("the kites fly over the harbour\n")
    ingest([src], "shop")
    with open_snapshot("shop") as snap:
        (src / "a.txt").write_text("the boats sail into the harbour\n")
        ingest([src], "shop")
        newer = corpus_version("shop")
        assert newer != snap.version and not index_dir("shop", snap.version).exists()
        index = load_index(snap)
        assert index.search("kites") and not index.search("boats")  # the snapshot's rows
    assert index_dir("shop", snap.version).exists() and index_dir("shop", newer).exists()
    # the next ingest takes its terms from the newer index, not the older one just rebuilt
    assert index_dir("shop", newer).stat().st_mtime > index_dir("shop", snap.version).stat(
        ).st_mtime
