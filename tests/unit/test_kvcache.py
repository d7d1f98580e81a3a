"""The KV cache's block keys, no model needed. The cache on the real bundled model:
tests/integration/test_engine_embedded.py."""

from __future__ import annotations

from engine.kvcache import block_hashes


def test_block_keys_chain_over_the_whole_prefix():
    ids = list(range(100))
    keys = block_hashes("m", ids, 16)
    assert len(keys) == 6  # full blocks only
    changed = block_hashes("m", [999, *ids[1:]], 16)
    assert all(a != b for a, b in zip(keys, changed, strict=True))  # a change early moves all
    tail_changed = block_hashes("m", ids[:40] + [7] * 60, 16)
    assert tail_changed[:2] == keys[:2] and tail_changed[2] != keys[2]
    assert block_hashes("other-model", ids, 16)[0] != keys[0]
