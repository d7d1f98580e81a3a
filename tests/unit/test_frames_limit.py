"""A server takes a limited number of images per prompt: frames beyond it go as their time and
words, spread over the video, and the count of a request says so."""

from __future__ import annotations

from engine.images import content_parts, image_cost, spread


def test_spread_keeps_first_and_last_and_the_limit():
    assert spread(3, 5) == [0, 1, 2] and spread(3, None) == [0, 1, 2]
    assert spread(10, 5) == [0, 2, 4, 7, 9] and spread(10, 1) == [0] and spread(10, 0) == []
    for n in range(1, 40):
        for limit in range(1, 8):
            chosen = spread(n, limit)
            assert len(chosen) == min(n, limit) and chosen == sorted(set(chosen))
            assert chosen[0] == 0 and (n <= limit or chosen[-1] == n - 1 or limit == 1)


def test_frames_beyond_the_limit_go_as_words(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    text = ""
    for i in range(12):
        (frames / f"{i}.jpg").write_bytes(b"\xff\xd8" + bytes(10))
        text += (f'<frame t="00:00:{i:02d}.000" image_tokens="727" tiles="2x2" '
                 f'image="{i}.jpg">slide {i}</frame>\n')
    parts = content_parts(text, frames, limit=5)
    assert sum(p["type"] == "image_url" for p in parts) == 5
    words = "".join(p["text"] for p in parts if p["type"] == "text")
    assert all(f"slide {i}" in words for i in range(12))  # every frame's time and words stay
    assert image_cost(text, frames, 5) == (5, 5 * 728)
    assert image_cost(text, frames) == (12, 12 * 728)
