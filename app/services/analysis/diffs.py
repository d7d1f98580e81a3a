"""The exact difference between two sources, or two corpora (two versions of one document set),
computed before any model reads it: what was added, removed and changed, with its place on both
sides. Each change becomes a small document the model explains, so a citation of it names both
sides."""

from __future__ import annotations

import difflib

from common.errors import UserError
from ingest.types import Document, Segment

CONTEXT_LINES = 2
MAX_CHANGE_LINES = 60  # of one side of one change, shown to the model (the diff keeps all)


def text_lines(doc: Document) -> list[str]:
    """A text source's lines as stored (its segments are consecutive line spans)."""
    if any(s.span_kind != "lines" for s in doc.segments):
        kind = doc.segments[0].span_kind if doc.segments else doc.kind
        raise UserError(f"compare reads text sources line by line; {doc.path} is read in "
                        f"{kind}s (compare two text files, or two corpora)")
    lines: list[str] = []
    for s in sorted(doc.segments, key=lambda s: s.start):
        lines += s.text.rstrip("\n").split("\n")
    return lines


def diff(left: Document | None, right: Document | None, left_name: str,
         right_name: str) -> list[dict]:
    """The changes from `left` to `right` (None: the file is not on that side)."""
    if left is None or right is None:
        side = right if left is None else left
        assert side is not None
        return [{"op": "added file" if left is None else "removed file", "path": side.path,
                 "left": None if left is None else {"name": left_name, "path": left.path},
                 "right": None if right is None else {"name": right_name, "path": right.path},
                 "before": "", "after": ""}]
    a, b = text_lines(left), text_lines(right)
    out = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        out.append({"op": {"replace": "changed", "delete": "removed", "insert": "added"}[op],
                    "path": right.path,
                    "left": {"name": left_name, "path": left.path, "lines": [i1 + 1, i2]},
                    "right": {"name": right_name, "path": right.path, "lines": [j1 + 1, j2]},
                    "before": "\n".join(a[i1:i2]), "after": "\n".join(b[j1:j2])})
    return out


def as_documents(changes: list[dict]) -> list[Document]:
    """Each change as one small document the model reads (and cites): both sides' places
    and texts, cut to MAX_CHANGE_LINES a side."""
    docs = []
    for n, c in enumerate(changes, 1):
        text = f"{c['op']}: {c['path']}\n"
        for side, key in (("LEFT", "left"), ("RIGHT", "right")):
            where = c[key]
            if where is None:
                text += f"{side}: (no such file)\n"
                continue
            lines = where.get("lines")
            span = f" lines {lines[0]}-{lines[1]}" if lines else ""
            body = c["before" if key == "left" else "after"].split("\n")[:MAX_CHANGE_LINES]
            text += f"{side} {where['name']}:{where['path']}{span}:\n" + "\n".join(body) + "\n"
        lines = text.count("\n")
        docs.append(Document(f"change {n}: {c['path']}", "", "text", None, "", len(text),
                             [Segment(0, text, "lines", 1, lines, max(1, len(text) // 4))],
                             tokens=max(1, len(text) // 4)))
    return docs
