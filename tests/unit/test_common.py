"""The bottom layer: atomic file writes and the one set of rules for token counts and sizes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.ingest_options import parse_size as parse_max_file_size
from common.errors import UserError
from common.files import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    temp_path,
)
from common.units import MAX_VALUE, parse_size, parse_tokens
from engine.planner import parse_context
from engine.types import EngineError
from ingest.pack import parse_budget
from ingest.types import IngestError

FULL = Path("/dev/full")  # every write to it fails with ENOSPC (Linux)
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- atomic writes ------------------------------------------------------------------------------

def test_writes_replace_the_file_and_make_its_folder(tmp_path):
    target = tmp_path / "new" / "deeper" / "a.json"
    atomic_write_text(target, "é\n")
    assert target.read_bytes() == "é\n".encode()  # UTF-8 whatever the locale
    atomic_write_bytes(target, memoryview(b"\x00\xff"))
    assert target.read_bytes() == b"\x00\xff"
    with atomic_open(target, "w", buffering=1 << 20, fsync=True) as fh:
        fh.write("one ")
        fh.write("two")
    assert target.read_text() == "one two"
    assert _leftovers(target.parent) == []


def test_a_released_old_file_is_a_second_name_until_removed(tmp_path):
    """`release` gets the replaced file under a second name (a hard link), so the replace does
    not wait for its blocks to be freed; none when there was nothing to replace."""
    target = tmp_path / "out.xml"
    handed: list = []
    with atomic_open(target, release=handed.append) as fh:
        fh.write("first")
    assert handed == [] and target.read_text() == "first"
    with atomic_open(target, release=handed.append) as fh:
        fh.write("second")
    (old,) = handed
    assert target.read_text() == "second" and old.read_text() == "first"
    assert old.parent == tmp_path and old.name.startswith(".out.xml.")
    assert old.stat().st_ino != target.stat().st_ino
    old.unlink()
    assert _leftovers(tmp_path) == []
    with pytest.raises(RuntimeError), atomic_open(target, release=handed.append) as fh:
        fh.write("third")
        raise RuntimeError("broke")
    assert len(handed) == 1 and target.read_text() == "second" and _leftovers(tmp_path) == []


def test_a_stream_that_raises_midway_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.xml"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="packer broke"), atomic_open(target) as fh:
        fh.write("new " * 100_000)
        fh.flush()
        assert temp_path(target).stat().st_size == 400_000  # half a file exists, aside
        raise RuntimeError("packer broke")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_ctrl_c_midway_leaves_the_old_file_and_no_temporary(tmp_path, mode):
    target = tmp_path / "out"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_open(target, mode) as fh:
        fh.write("piece" if mode == "w" else b"piece")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


@needs_full
@pytest.mark.parametrize("write", [
    lambda p: atomic_write_text(p, "x" * (1 << 20)),
    lambda p: atomic_write_bytes(p, b"x" * (1 << 20)),
    lambda p: atomic_write_text(p, "x"),  # small: the error comes when the file is closed
], ids=["text", "bytes", "text-at-close"])
def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, write):
    """A real ENOSPC: this thread's temporary name is a link to /dev/full."""
    target = tmp_path / "data.json"
    target.write_text("old")
    temp_path(target).symlink_to(FULL)
    with pytest.raises(OSError, match="No space left"):
        write(target)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_a_target_that_cannot_be_replaced_leaves_no_temporary(tmp_path):
    folder = tmp_path / "taken"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_write_text(folder, "text")
    assert (folder / "inside").is_dir() and _leftovers(tmp_path) == []


def test_only_whole_writes(tmp_path):
    with pytest.raises(ValueError, match="'a'"), atomic_open(tmp_path / "f", "a"):  # type: ignore[arg-type]
        pass
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_of_one_file_never_mix(tmp_path):
    """Threads of one process each write through their own temporary file: the file is always
    one writer's whole content."""
    target = tmp_path / "prefs.json"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for _ in range(20):
                atomic_write_text(target, str(n) * 50_000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        if target.exists():
            text = target.read_text()
            assert len(text) == 50_000 and len(set(text)) == 1
            seen.add(text[0])
    for t in threads:
        t.join()
    assert not errors and _leftovers(tmp_path) == []
    assert len(set(target.read_text())) == 1


# --- token counts and sizes ---------------------------------------------------------------------

TOKENS = {
    "8192": 8192, " 8192 ": 8192, "128k": 131_072, "128K": 131_072, "128 k": 131_072,
    "10M": 10_485_760, "10m": 10_485_760, "1.5M": 1_572_864, "0.5k": 512, "1.7": 1,
    "1,048,576": 1_048_576, "1_048_576": 1_048_576, "1,024k": 1_048_576, 4096: 4096,
    str(MAX_VALUE): MAX_VALUE,
}
NOT_TOKENS = ["", " ", "lots", "k", "M", "-5", "-5k", "0", "0k", "0.4", "-0", "1e6", "inf",
              "nan", "infk", "10G", "1KB", "1,5M", "10,00", "1__0", "_10", "10_", "+5", ".5k",
              "1.k", "1 000", "١٠", str(MAX_VALUE + 1), "9" * 200, True, False, 0, -1, 1.5,
              None]
SIZES = {
    "0": 0, "10MB": 10 * 1024**2, "10M": 10 * 1024**2, " 1.5kb ": 1536, "500KB": 512_000,
    "1GB": 1024**3, "2g": 2 * 1024**3, "7B": 7, "7": 7, "1,024": 1024, "1_000KB": 1_024_000,
    0: 0, 4096: 4096,
}
NOT_SIZES = ["", "MB", "lots", "-1MB", "-0.5", "-0", "0.5", "0.5B", "nanMB", "infKB", "1TB",
             "1e5", "1 0MB", "1,5MB", str(MAX_VALUE + 1), True, -1, None]


def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message and len(message) < 200, message
    return message


@pytest.mark.parametrize(("text", "tokens"), TOKENS.items())
def test_token_counts(text, tokens):
    assert parse_tokens(text) == parse_budget(text) == parse_context(text) == tokens


@pytest.mark.parametrize("text", NOT_TOKENS)
def test_not_token_counts_are_one_line_refusals_from_each_caller(text):
    with pytest.raises(UserError) as err:
        parse_tokens(text)
    assert _one_line(err.value).startswith("not a token count: ")
    with pytest.raises(IngestError) as err:
        parse_budget(text)
    assert _one_line(err.value).startswith("not a token budget: ")
    with pytest.raises(EngineError) as err:
        parse_context(text)
    assert "--context" in _one_line(err.value)


@pytest.mark.parametrize(("text", "size"), SIZES.items())
def test_sizes(text, size):
    assert parse_size(text) == parse_max_file_size(text) == size


@pytest.mark.parametrize("text", NOT_SIZES)
def test_not_sizes_are_one_line_refusals(text):
    with pytest.raises(UserError) as err:
        parse_size(text)
    assert _one_line(err.value).startswith("not a size: ")
    with pytest.raises(IngestError):
        parse_max_file_size(text)


def test_the_message_names_what_was_parsed():
    with pytest.raises(UserError, match=r"^not a --stage length: 'x' \(use e\.g\. 8192"):
        parse_tokens("x", "--stage length")
    with pytest.raises(EngineError, match="at least 1 token"):
        parse_tokens("0", error=EngineError)


counts = st.integers(1, MAX_VALUE // 1024**2)


@settings(max_examples=200, deadline=None)
@given(counts)
def test_any_count_reads_back_in_every_spelling(n):
    assert parse_tokens(str(n)) == parse_tokens(n) == n
    assert parse_tokens(f"{n:,}") == parse_tokens(f"{n:_}") == n
    assert parse_tokens(f"{n}k") == parse_tokens(f" {n} K ") == n * 1024
    assert parse_tokens(f"{n}M") == n * 1024**2
    assert parse_size(str(n)) == n and parse_size(f"{n}KB") == n * 1024


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=20), st.from_regex(r"\s*-?[0-9.,_]{1,8}\s*[kKmMgGbB]{0,2}\s*",
                                                     fullmatch=True)))
def test_the_token_parsers_agree_on_everything(text):
    """parse_budget and parse_context are one parser: the same value, or both refuse."""
    results = []
    for parse, error in ((parse_budget, IngestError), (parse_context, EngineError)):
        try:
            results.append(parse(text))
        except error as exc:
            _one_line(exc)
            results.append(None)
    assert results[0] == results[1]
    assert results[0] is None or 1 <= results[0] <= MAX_VALUE
