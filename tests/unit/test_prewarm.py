"""Prewarm's staging and resume bookkeeping (the run against a real server is in test_vllm_cpu)."""

from __future__ import annotations

from engine.prewarm import BLOCK, StateFile, _text_ends, stage_ends


def test_stages_are_block_aligned_and_grow_to_the_last_full_block():
    ends = stage_ends(1000, 256, block=16)
    assert ends == [256, 512, 768, 992]
    # by default stages end on vLLM-CPU's 128-token blocks, which are GPU vLLM's 16-token ones too
    assert BLOCK % 16 == 0 and BLOCK % 128 == 0
    assert stage_ends(1000, 256) == [256, 512, 768, 896]
    assert stage_ends(10 * 2**20, 256 * 1024, block=16)[-1] == 10 * 2**20
    assert len(stage_ends(10 * 2**20, 256 * 1024, block=16)) == 40


def test_stage_size_is_rounded_to_blocks_and_never_zero():
    assert stage_ends(100, 20, block=16) == [16, 32, 48, 64, 80, 96]
    assert stage_ends(100, 1, block=16) == [16, 32, 48, 64, 80, 96]
    assert stage_ends(10, 256, block=16) == []  # less than one block: nothing cacheable


def test_a_resumed_run_starts_after_the_last_confirmed_stage():
    assert stage_ends(1000, 256, start=512, block=16) == [768, 992]
    assert stage_ends(1000, 256, start=600, block=16) == [768, 992]
    assert stage_ends(1000, 256, start=992, block=16) == []


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


def test_a_video_corpus_is_prewarmed_with_its_pictures(tmp_path):
    """Token ids cannot carry images: a request with frames is prewarmed as the chat request
    ask sends, pictures included, so ask's request finds its prefix (images too) cached."""
    from fakes import FakeOpenAI

    from engine.openai_backend import OpenAIBackend
    from engine.prewarm import prewarm
    from engine.types import CompletionRequest

    frames = tmp_path / "frames"
    frames.mkdir()
    prefix = ""
    for i in range(3):
        (frames / f"{i}.jpg").write_bytes(b"\xff\xd8" + bytes(16))
        prefix += (f'<frame t="00:00:0{i}.000" image_tokens="147" tiles="1x1" image="{i}.jpg">'
                   f"slide {i} " + "words " * 200 + "</frame>\n")
    server = FakeOpenAI(max_model_len=100_000).start()
    try:
        backend = OpenAIBackend(server.url, max_retries=0)
        report = prewarm(backend, CompletionRequest(prompt="", prefix=prefix,
                                                    images_root=str(frames)),
                         stage=256, state_dir=tmp_path / "state")
        sent = server.completions
    finally:
        server.close()
    assert report.mode == "text" and report.stages and report.stages[-1].end == len(prefix)
    assert all(s.path == "/v1/chat/completions" for s in sent)
    last = sent[-1].body["messages"][-1]["content"]
    assert [p["type"] for p in last].count("image_url") == 3
