"""Credentials written the way people write them down: a Markdown table row, a key a subtitle
file carries over into its next cue. Ordinary tables and subtitles stay as they are."""

from __future__ import annotations

import pytest

from ingest import secrets

GITHUB = "ghp_" + "Zx9" * 12


@pytest.mark.parametrize("row", ["| password | hunter2 |", "| **API key** | `sk_abc123def456` |",
                                 "| db_password | swordfish |"])
def test_a_table_row_naming_a_credential_is_redacted(row):
    found = secrets.scan(f"# Staging\n\n| name | value |\n|---|---|\n{row}\n", "notes.md")
    assert [(f.line, f.kind) for f in found.findings] == [(5, "secret-keyword")]
    assert "[REDACTED:secret-keyword]" in found.text and found.text.count("|") == 9


@pytest.mark.parametrize("row", [
    "| password | str | the user's password |", "| password | string |", "| token | `None` |",
    "| api_key | required |", "| password | Password for the user |", "| max_tokens | 4096 |",
    "| password | ******** |", "| secret_key | <your key> |", "| password | see vault |",
    "| tokenizer | cl100k |", "| keyboard | qwertyuiop |"])
def test_an_ordinary_table_row_is_not_a_secret(row):
    assert secrets.scan(row + "\n", "notes.md").findings == ()


def test_a_key_carried_over_into_the_next_cue_is_redacted():
    srt = (f"1\n00:00:01,000 --> 00:00:02,000\nthe token is {GITHUB[:20]}\n\n"
           f"2\n00:00:02,000 --> 00:00:03,000\n{GITHUB[20:]}\n")
    found = secrets.scan(srt, "talk.srt")
    assert [(f.line, f.kind) for f in found.findings] == [(3, "github-token")]
    assert found.text.count("[REDACTED:github-token]") == 2 and "Zx9Zx9" not in found.text
    assert found.text.count("\n") == srt.count("\n")  # the cues' lines and timings hold
    vtt = (f"WEBVTT\n\n00:01.000 --> 00:02.000\ntoken {GITHUB[:20]}\n\n"
           f"00:02.000 --> 00:03.000 align:start\n{GITHUB[20:]} ok\n")
    assert "Zx9Zx9" not in secrets.scan(vtt, "talk.vtt").text


def test_ordinary_cues_are_left_alone():
    srt = ("1\n00:00:01,000 --> 00:00:02,000\nHello there\n\n"
           "2\n00:00:02,000 --> 00:00:03,000\nGeneral Kenobi ABCD1234\n")
    assert secrets.scan(srt, "talk.srt").findings == ()
