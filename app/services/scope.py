"""Which part of a corpus a question is about, from the names it uses in plain words: "in
uvicorn", "Starlette's redirect", "pandas' CSV reader", "Python's tarfile module",
"concurrent.futures", "the PyYAML library". Retrieval then ranks inside those files too (the
`scope` signal), so a question about one package among 25,000 files is not outvoted by files
elsewhere that share its ordinary words.

A word (or two or three said together: "Hugging Face hub") names a place when some folder or
module of the corpus is called so (`-`, `_` and spaces alike, any case), at the top level or
in at most `MAX_PLACES` places (a bare word only at the top level: an installed package or a
standard library module), and when it reads as a name rather than an ordinary word: the
question marks it as a name (a capital inside the sentence, "the ... library/module/package",
a possessive), or it is no common English word (`uvicorn`, `argparse`: English word
frequencies from pyspellchecker's list) and some of the segments using it lie inside that
place, or most of them do. `requests` in "how many requests does ..." is a folder of
site-packages too, but an English word used all over the corpus, so it does not scope; "the
requests library" does. A distribution's name (`PyYAML`, `Pillow`, `python-docx`) stands for the
packages its `.dist-info/top_level.txt` lists, or for the package its name ends with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.retrieval import STOP, SegmentIndex

#: the table of places is built per process from the file list (0.12 s for 23,808 files, 5.5 s
#: for a million): over this many files a question ranks without scope (search says so)
MAX_FILES = 100_000
MAX_PLACES = 3  # a name found in more places (`config`, `utils`, `tests`) names none of them
MAX_SHARE = 0.25  # a place holding more of the corpus's files narrows nothing
PLAIN_SHARE = 0.3  # of the segments using an English word, the share inside the place it names
NAME_SHARE = 0.02  # the same, for a word that reads as a name
COMMON = 500  # an English word this frequent (pyspellchecker's counts) is ordinary
MAX_LOOKS = 32  # words of one question that name places, weighed (each reads a posting list)
MAX_NAMES = 8  # places one question may name
#: a word of the question as written, whole: never a piece of a longer identifier
#: (`test_sympy__physics__gate` names no folder `physics`)
WORD = re.compile(r"(?<![\w.-])[A-Za-z][A-Za-z0-9]*(?:[._-]+[A-Za-z0-9]+)*(?![\w-])")
MARKS = r"(?:library|libraries|package|module|framework|project|lib|sdk|client|server|toolkit)"
DIST = re.compile(r"^([A-Za-z0-9_.]+?)-[0-9][^/]*\.dist-info/")
#: what reads a corpus file's text by its path (for a .dist-info/top_level.txt), or None
ReadFile = Callable[[str], str | None]


@dataclass
class Scope:
    """The files a question names (indices into the index's `files`), and the words that
    named them."""

    names: list[str] = field(default_factory=list)
    files: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.files)


@dataclass
class Places:
    """A corpus's folders and modules by name: name -> {place prefix: its files}."""

    by_name: dict[str, dict[str, list[int]]]
    dists: dict[str, str]  # a distribution's name -> its .dist-info folder
    total: int  # files


def _key(word: str) -> str:
    """A name as compared: `_pytest`, `sse-starlette`, `Hugging Face hub` -> `pytest`,
    `ssestarlette`, `huggingfacehub`."""
    return re.sub(r"[-_ ]", "", word.lower())


def places(files: list[str]) -> Places:
    """Every folder and every module stem of `files`, by name, with the files under it."""
    by_name: dict[str, dict[str, list[int]]] = {}
    dists: dict[str, str] = {}
    for i, path in enumerate(files):
        parts = path.split("/")
        for depth, part in enumerate(parts):
            name = part if depth < len(parts) - 1 else part.rsplit(".", 1)[0]
            if not name or (depth == len(parts) - 1 and name == "__init__"):
                continue
            prefix = "/".join(parts[:depth + 1])
            by_name.setdefault(_key(name), {}).setdefault(prefix, []).append(i)
        if m := DIST.match(path):
            dists.setdefault(_key(m.group(1)), path[:m.end() - 1])
    return Places(by_name, dists, len(files))


_PLACES: dict[int, Places] = {}  # by the files' hash: an index is loaded per question


def _cached_places(index: SegmentIndex) -> Places:
    key = hash(tuple(index.files))
    if key not in _PLACES:
        _PLACES.clear()
        _PLACES[key] = places(index.files)
    return _PLACES[key]


def _capitals_say_nothing(question: str) -> bool:
    """A question written in capitals or in Title Case marks no word as a name by its
    capital."""
    words = [w for w in re.findall(r"[A-Za-z]+", question)[1:] if len(w) > 3]
    return bool(words) and sum(w[0].isupper() for w in words) > len(words) / 2


def _marked(question: str, m: re.Match, capitals: bool = True) -> bool:
    """Whether the question treats the word at `m` as a name: capitalised inside a sentence
    (when `capitals` mean something in it), called a library/module/package, possessive, or
    spelled like code (`concurrent.futures`, `sse-starlette`)."""
    word = m.group()
    before = question[:m.start()].rstrip()
    after = question[m.end():]
    capital = capitals and word[0].isupper() and before and before[-1] not in ".:;?!\"'(`"
    called = re.match(rf"\s+{MARKS}\b", after, re.I) or re.search(
        rf"\b{MARKS}\s+(?:called\s+|named\s+)?$", before, re.I)
    return bool(capital or called or re.match(r"'s?\b|'(?=\s)", after)
                or re.search(r"[._-]|\d", word))


def _share(index: SegmentIndex, key: str, files: list[int]) -> float:
    """Of the segments that use the word (as `key`: `sse_starlette` whole), the share inside
    `files`."""
    import numpy as np

    rows = index.rows_with(key)
    if not len(rows):
        return 0.0
    inside = np.zeros(len(index.files), dtype=bool)
    inside[np.asarray(files, dtype=np.int64)] = True
    return float(inside[np.asarray(index.file_of)[rows]].mean())


_FREQUENCIES: dict[str, int] = {}


def _frequency(word: str) -> int:
    """How common `word` is in English (pyspellchecker's counts; 0 when unknown or the list
    cannot be read: then every word may be a name, and the share decides)."""
    if not _FREQUENCIES:
        import gzip
        import importlib.util
        import json
        from pathlib import Path

        spec = importlib.util.find_spec("spellchecker")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            try:
                with gzip.open(Path(folder) / "resources" / "en.json.gz") as fh:
                    _FREQUENCIES.update(json.load(fh))
                break
            except (OSError, ValueError):
                continue
        _FREQUENCIES.setdefault("", 0)  # read once, even when missing
    return int(_FREQUENCIES.get(word, 0))


def _dist_places(table: Places, word: str, read: ReadFile | None) -> dict[str, list[int]]:
    """The places a distribution's name stands for: its top_level.txt's packages, else the
    package its name ends with (`python-docx` -> docx, `PyYAML` -> yaml, `PyJWT` -> jwt)."""
    key = _key(word)
    folder = table.dists.get(key)
    if folder is None:
        return {}
    names: list[str] = []
    text = read(f"{folder}/top_level.txt") if read else None
    if text:
        names = [_key(n) for n in text.split() if n.isidentifier()][:5]
    if not names:
        names = [key[len(p):].lstrip("_") for p in ("python", "py") if key.startswith(p)]
    out: dict[str, list[int]] = {}
    for name in names:
        for prefix, files in table.by_name.get(name, {}).items():
            if "/" not in prefix or prefix.endswith(".py"):
                out[prefix] = files
    return out


def named_scope(question: str, index: SegmentIndex, read: ReadFile | None = None) -> Scope:
    """The files `question` names (see the module's docstring); empty when it names none."""
    if not index.files or index.file_of is None or len(index.files) > MAX_FILES:
        return Scope()
    table = _cached_places(index)
    scope = Scope()
    seen: set[str] = set()
    taken: list[tuple[int, int]] = []  # spans of the names found: their words name nothing
    capitals = not _capitals_say_nothing(question)
    for m, end, word in _candidates(question):
        key = _key(word)
        if len(key) < 3 or key in STOP or key in seen or len(seen) >= MAX_LOOKS \
                or len(scope.names) >= MAX_NAMES or any(a <= m.start() < b for a, b in taken):
            continue
        marked = _marked(question, m, capitals)
        found = _dotted(table, word) if "." in word else _top_level(table.by_name.get(key))
        if found and not marked and "." not in word:
            # a bare word names an installed package or module, not a folder deep inside
            # one: "polynomial" is not numpy/polynomial unless called "the polynomial module"
            found = {p: f for p, f in found.items() if "/" not in p}
        by_dist = not found and marked
        if by_dist:  # `PyYAML`, `Pillow`: a distribution's name, said as a name
            found = _dist_places(table, word, read)
        if not found:
            continue
        seen.add(key)
        if len(found) > MAX_PLACES:
            continue
        files = sorted({f for fs in found.values() for f in fs})
        if len(files) > MAX_SHARE * table.total:
            continue
        common = all(_frequency(_key(w)) >= COMMON for w in word.split())
        if " " in word and common and not marked:
            continue  # "user agent": ordinary words together, not a name
        if not (marked or "." in word) and _share(index, key, files) \
                < (PLAIN_SHARE if common else NAME_SHARE):
            continue
        scope.names.append(word)
        scope.files.update(files)
        taken.append((m.start(), end))
    return scope


def _candidates(question: str):
    """(first match, end, words) for each run of three or two words said together as one
    name ("Hugging Face hub", "python multipart"), then for each word."""
    found = list(WORD.finditer(question))
    for n in (3, 2):
        for i in range(len(found) - n + 1):
            run = found[i:i + n]
            if all(question[a.end():b.start()] == " " for a, b in zip(run, run[1:], strict=False)):
                yield run[0], run[-1].end(), " ".join(x.group() for x in run)
    for m in found:
        yield m, m.end(), m.group().strip("._-")


def _top_level(found: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
    """A name that is a top-level folder or module (an installed package, a standard library
    module) stands for that one alone, not for folders named alike deeper down
    (`numpy` is not `pandas/compat/numpy`)."""
    if not found:
        return found
    top = {p: f for p, f in found.items() if "/" not in p}
    return top or found


def _dotted(table: Places, word: str) -> dict[str, list[int]]:
    """`concurrent.futures` or `http.client`: the folder or module at that path."""
    parts = [_key(p) for p in word.split(".") if p]
    want = "/".join(parts)
    out = {}
    for prefix, files in table.by_name.get(parts[-1], {}).items():
        path = "/".join(_key(p) for p in prefix.rsplit(".", 1)[0].split("/")) \
            if prefix.endswith(".py") else "/".join(_key(p) for p in prefix.split("/"))
        if path == want or path.endswith("/" + want):  # whole parts: aiohttp is not http
            out[prefix] = files
    return out
