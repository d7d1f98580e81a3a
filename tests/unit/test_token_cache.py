"""The token cache holds a bounded number of entries: a large cache is asked key by key (a
billion-token corpus has 12M counts), new entries are written out as they pile up."""

from __future__ import annotations

from ingest import counting
from ingest.counting import READS_PREFIX, TokenCache


def test_a_large_cache_is_asked_key_by_key_and_writes_as_it_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(counting, "HELD", 5)
    monkeypatch.setattr(counting, "BATCH_KEYS", 3)
    path = tmp_path / "counts.sqlite"
    cache = TokenCache(path, "fp")
    for i in range(12):
        cache.put(f"k{i}", i)
        cache.put_verdict(f"v{i}", f"r{i}")
        assert len(cache._new) < 5 and len(cache._new_verdicts) < 5  # written out at HELD
    cache.put_verdict(READS_PREFIX + "x", '{"read": 1}')
    assert cache.get_many(["k3", "k11", "nope"]) == {"k3": 3, "k11": 11}
    cache.flush()
    monkeypatch.setattr(counting, "PRELOAD_BYTES", 0)  # any file is "large"
    again = TokenCache(path, "fp")
    assert again.get_many([f"k{i}" for i in range(12)] + ["nope"]) == {f"k{i}": i
                                                                        for i in range(12)}
    assert again.get("k7") == 7 and again.get("nope") is None
    assert again.verdict("v9") == "r9" and again.verdict("nope") is None
    assert again.verdict(READS_PREFIX + "x") == '{"read": 1}'
    assert again._known is None and again._verdicts is None  # nothing read whole
    assert TokenCache(path, "other").get("k1") is None  # another tokenizer's counts


def test_a_small_cache_read_whole_stops_growing_past_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(counting, "HELD", 10)
    cache = TokenCache(tmp_path / "counts.sqlite", "fp")
    assert cache.get("a") is None and cache._known == {}  # read whole (an empty file)
    for i in range(25):
        cache.put(f"k{i}", i)
    cache.flush()
    assert cache._known is None and cache.get("k20") == 20  # now asked key by key


def test_a_damaged_cache_file_is_made_anew(tmp_path, monkeypatch):
    """The cache is written without fsync: a file an OS crash damaged, or any file that is
    not a database, is dropped and written anew, not passed over at every run."""
    import sqlite3

    path = tmp_path / "counts.sqlite"
    for large in (False, True):  # read whole, then asked key by key
        path.write_bytes(b"not a database at all" * 500)
        monkeypatch.setattr(counting, "PRELOAD_BYTES", 0 if large else 64 << 20)
        cache = TokenCache(path, "fp")
        assert cache.get("k") is None and cache.verdict("v") is None
        cache.put("k", 7)
        cache.flush()
        assert TokenCache(path, "fp").get("k") == 7
    TokenCache(path, "fp")._damaged(sqlite3.OperationalError("database is locked"))
    assert TokenCache(path, "fp").get("k") == 7  # a busy or full file is kept
