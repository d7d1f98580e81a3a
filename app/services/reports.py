"""What an ingest or a pack tells the user: every file with its status, and a token tree."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FileRow:
    """One file of a report (slots: a million of them with a dict each took ~0.15 GB more)."""

    path: str
    status: str  # added | changed | unchanged | skipped | error | removed
    tokens: int = 0
    bytes: int = 0
    reason: str = ""
    flags: tuple[str, ...] = ()


@dataclass
class IngestReport:
    corpus: str
    tokenizer: str
    created: bool
    files: list[FileRow]
    total_tokens: int
    version_hash: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def injections(self) -> list[tuple[str, str]]:
        return [(f.path, fl.removeprefix("injection:")) for f in self.files for fl in f.flags
                if fl.startswith("injection:")]

    @property
    def secrets(self) -> int:
        """Credentials found in the corpus's files (one flag each; values redacted unless kept)."""
        return sum(fl.startswith("secret:") for f in self.files if f.status != "removed"
                   for fl in f.flags)

    def to_json(self) -> dict:
        return {**self.head_json(), "files": [file_json(f) for f in self.files],
                "tree": self.tree()}

    def tree(self) -> dict[str, int]:
        return token_tree((f.path, f.tokens) for f in self.files
                          if f.status in ("added", "changed", "unchanged"))

    def head_json(self) -> dict:
        """Everything but the files and the tree (`--json` streams the files one by one)."""
        return {
            "corpus": self.corpus, "tokenizer": self.tokenizer, "created": self.created,
            "total_tokens": self.total_tokens, "version_hash": self.version_hash,
            "seconds": round(self.seconds, 3), "notes": self.notes,
            "summary": {**{s: self.count(s) for s in
                           ("added", "changed", "unchanged", "removed", "skipped", "error")},
                        "secrets": self.secrets,
                        "secret_files": sum(1 for f in self.files if f.status != "removed"
                                            and any(fl.startswith("secret:") for fl in f.flags))},
        }


def file_json(f: FileRow) -> dict:
    return {"path": f.path, "status": f.status, "tokens": f.tokens, "bytes": f.bytes,
            "reason": f.reason, "flags": list(f.flags)}


def token_tree(items: Iterable[tuple[str, int]], depth: int = 2) -> dict[str, int]:
    """Tokens per folder, down to `depth` levels ("." for files at the top)."""
    tree: dict[str, int] = {}
    for path, tokens in items:
        parts = path.split("/")[:-1]
        keys = ["."] if not parts else ["/".join(parts[:i]) + "/"
                                        for i in range(1, min(depth, len(parts)) + 1)]
        for key in keys:
            tree[key] = tree.get(key, 0) + tokens
    return dict(sorted(tree.items()))
