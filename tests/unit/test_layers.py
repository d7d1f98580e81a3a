"""The house's rules, checked on the source: data flows common <- ingest <- engine <- evals <- app
<- ui (a layer imports only layers below it or itself, function-level imports included), common
imports no other layer, only `app` reads settings, and no modules import each other in a
circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("common", "ingest", "engine", "evals", "app", "ui")


def _modules() -> dict[str, Path]:
    out = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules `path` imports, anywhere in it (`from a.b import c` counts a.b.c when
    that is a module, else a.b; relative imports are resolved against the module's package;
    `importlib.import_module("a.b")` with a literal name counts too)."""
    found = set()
    package = path.relative_to(ROOT).parent.parts
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules
                     else module for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in LAYERS}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t in _imports(path, modules) if t in modules and t != name}
            for name, path in modules.items()}


def test_no_layer_imports_a_layer_above_it():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = sorted(f"{src} imports {dst}" for src, dsts in _graph().items() for dst in dsts
                    if rank[dst.split(".")[0]] > rank[src.split(".")[0]])
    assert not upward, upward


def test_common_imports_no_other_layer():
    """The bottom layer: what it imports is the standard library and itself (what the test
    above checks by rank, spelt out, so that a new layer listed below it fails here too)."""
    graph = _graph()
    assert any(src.startswith("common.") for src in graph)  # the layer is there and scanned
    outside = sorted(f"{src} imports {dst}" for src, dsts in graph.items() for dst in dsts
                     if src.split(".")[0] == "common" and dst.split(".")[0] != "common")
    assert not outside, outside


def test_only_app_reads_settings():
    readers = sorted(src for src, dsts in _graph().items()
                     if "app.settings" in dsts and src.split(".")[0] not in ("app", "ui"))
    assert not readers, readers


def test_no_import_circles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, circles
