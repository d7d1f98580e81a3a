"""Prewarm's staging and resume bookkeeping (the run against a real server is in test_vllm_cpu)."""

from __future__ import annotations

from engine.prewarm import BLOCK, StateFile, _text_ends, stage_ends


def test_stages_are_block_aligned_and_grow_to_the_last_full_block():
    ends = stage_ends(1000, 256)
    assert ends == [256, 512, 768, 992]
    assert all(e % BLOCK == 0 for e in ends)
    assert stage_ends(10 * 2**20, 256 * 1024)[-1] == 10 * 2**20
    assert len(stage_ends(10 * 2**20, 256 * 1024)) == 40


def test_stage_size_is_rounded_to_blocks_and_never_zero():
    assert stage_ends(100, 20) == [16, 32, 48, 64, 80, 96]
    assert stage_ends(100, 1) == [16, 32, 48, 64, 80, 96]
    assert stage_ends(10, 256) == []  # less than one block: nothing cacheable


def test_a_resumed_run_starts_after_the_last_confirmed_stage():
    assert stage_ends(1000, 256, start=512) == [768, 992]
    assert stage_ends(1000, 256, start=600) == [768, 992]
    assert stage_ends(1000, 256, start=992) == []


def test_text_stages_cut_at_line_ends_and_cover_everything():
    text = "".join(f"line {i}\n" for i in range(200))
    ends = _text_ends(text, 100, 0)
    assert ends[-1] == len(text)
    assert all(text[e - 1] == "\n" for e in ends)
    assert ends == sorted(set(ends))
    assert _text_ends(text, 100, ends[2]) == ends[3:]


def test_state_file_round_trip_and_damage(tmp_path):
    state = StateFile(tmp_path, "http://h/v1", "m", "corpus-a")
    assert state.load() == 0
    state.save(4096)
    assert StateFile(tmp_path, "http://h/v1", "m", "corpus-a").load() == 4096
    assert StateFile(tmp_path, "http://h/v1", "m", "corpus-b").load() == 0  # other corpus
    assert StateFile(tmp_path, "http://other/v1", "m", "corpus-a").load() == 0
    state.path.write_text("{not json")
    assert state.load() == 0  # a damaged state file means: start over, never crash
    state.clear()
    assert not state.path.exists()
