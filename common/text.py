"""Whether parsed data can be sent: JSON's `\\ud800` escape (and a parquet string column) can
hold a lone surrogate, a str that no UTF-8 request can carry. A suite's reader asks before a
run starts, so a bad file is one line, not a traceback mid-run."""

from __future__ import annotations


def encodable(data: object) -> bool:
    """Every string in `data` (nested lists, tuples and dicts, keys included) encodes as UTF-8."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True
