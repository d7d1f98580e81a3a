"""Jupyter notebooks as their cells (percent format), outputs left out."""

from __future__ import annotations

import json

from ingest.types import IngestError, Segment


def read_notebook(text: str) -> tuple[list[Segment], str | None]:
    """One segment per cell; returns (segments, kernel language)."""
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IngestError(f"not a valid notebook: {exc}") from exc
    language = None
    if isinstance(nb.get("metadata"), dict):
        info = nb["metadata"].get("language_info") or nb["metadata"].get("kernelspec") or {}
        language = (info.get("name") or info.get("language")) if isinstance(info, dict) else None
    segments: list[Segment] = []
    for i, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        kind = cell.get("cell_type", "code")
        header = "# %%\n" if kind == "code" else f"# %% [{kind}]\n"
        body = str(source)
        if body and not body.endswith("\n"):
            body += "\n"
        segments.append(Segment(len(segments), header + body, "cell", i, i))
    return segments, language
