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
    if not isinstance(cells, list):
        raise IngestError(f"not a valid notebook: 'cells' is {type(cells).__name__}, not a list")
    language = None
    if isinstance(nb.get("metadata"), dict):
        meta = nb["metadata"]
        lang_info, kernel = meta.get("language_info"), meta.get("kernelspec")
        if isinstance(lang_info, dict) and lang_info.get("name"):
            language = lang_info["name"]
        elif isinstance(kernel, dict):  # kernelspec's `language`, not its name ("python3", "ir")
            language = kernel.get("language") or kernel.get("name")
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
