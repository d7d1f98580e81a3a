"""Definitions (functions, classes, methods, ...) with line ranges, via tree-sitter.

Grammars come compiled inside `tree-sitter-language-pack==0.13.0` (1.x downloads them at run
time, which fails offline). The walk descends only into containers (modules, classes, impl
blocks, namespaces), never into function bodies: that keeps it fast on large repositories.
"""

from __future__ import annotations

from functools import cache

from ingest.types import Symbol

DEFINITIONS: dict[str, str] = {
    "function_definition": "function", "function_declaration": "function",
    "function_item": "function", "method_definition": "method", "method_declaration": "method",
    "method": "method", "singleton_method": "method", "constructor_declaration": "method",
    "class_definition": "class", "class_declaration": "class", "class_specifier": "class",
    "class": "class", "struct_specifier": "struct", "struct_item": "struct",
    "enum_item": "enum", "enum_declaration": "enum", "trait_item": "trait",
    "interface_declaration": "interface", "impl_item": "impl", "module": "module",
    "type_declaration": "type", "object_declaration": "object", "protocol_declaration": "protocol",
    "namespace_definition": "namespace", "mod_item": "module", "type_alias_declaration": "type",
}
CONTAINERS = {
    "module", "program", "source_file", "translation_unit", "compilation_unit",
    "decorated_definition", "export_statement", "class_body", "declaration_list",
    "field_declaration_list", "interface_body", "enum_body", "namespace_declaration",
    "template_declaration", "internal_module", "body_statement", "statement_block",
}
BODY_FIELDS = ("body", "block")
CALLABLE = {"function", "method"}


@cache
def _parser(language: str):
    try:
        from tree_sitter_language_pack import get_parser

        return get_parser(language)  # type: ignore[arg-type]
    except Exception:  # no grammar for it: the file stays plain text
        return None


def has_grammar(language: str | None) -> bool:
    return language is not None and _parser(language) is not None


def _name(node) -> str | None:
    named = node.child_by_field_name("name")
    if named is not None:
        return named.text.decode("utf-8", "replace")
    declarator = node.child_by_field_name("declarator")
    while declarator is not None:  # C/C++: function_declarator -> identifier
        if declarator.type in ("identifier", "field_identifier", "qualified_identifier",
                               "operator_name", "destructor_name"):
            return declarator.text.decode("utf-8", "replace")
        nxt = declarator.child_by_field_name("declarator")
        declarator = nxt
    if node.type == "impl_item":
        typ = node.child_by_field_name("type")
        if typ is not None:
            return typ.text.decode("utf-8", "replace")
    return None


def _signature(node, source: bytes) -> str:
    body = next((b for f in BODY_FIELDS if (b := node.child_by_field_name(f)) is not None), None)
    end = body.start_byte if body is not None else node.end_byte
    head = source[node.start_byte:end].decode("utf-8", "replace").rstrip()
    lines = head.splitlines()
    if len(lines) > 6:
        lines = lines[:6] + ["..."]
    return "\n".join(lines).rstrip(" {:") if body is not None else lines[0] if lines else ""


def extract_symbols(text: str, language: str | None) -> list[Symbol]:
    """Definitions in text; [] when the language has no grammar or the parse fails."""
    parser = _parser(language) if language else None
    if parser is None:
        return []
    source = text.encode("utf-8", "surrogatepass")
    try:
        tree = parser.parse(source)
    except Exception:
        return []
    out: list[Symbol] = []

    def visit(node, parent: str | None, in_class: bool) -> None:
        for child in node.children:
            kind = DEFINITIONS.get(child.type)
            if kind is not None:
                name = _name(child)
                if name:
                    if kind == "function" and in_class:
                        kind = "method"
                    out.append(Symbol(name, kind, child.start_point[0] + 1,
                                      child.end_point[0] + 1, _signature(child, source), parent))
                if kind not in CALLABLE:  # look inside classes, impls, namespaces
                    body = next((b for f in BODY_FIELDS
                                 if (b := child.child_by_field_name(f)) is not None), None)
                    inner = body if body is not None else child
                    visit(inner, name or parent, kind in ("class", "impl", "trait", "interface",
                                                          "struct", "object", "protocol"))
            elif child.type in CONTAINERS or (child.type == "block" and in_class):
                visit(child, parent, in_class)

    visit(tree.root_node, None, False)
    return out


def _docstring_lines(lines: list[str], symbol: Symbol, language: str | None) -> list[str]:
    """The docstring right after a Python definition's header, if any (first 3 lines)."""
    if language != "python":
        return []
    sig_lines = symbol.signature.count("\n") + 1
    i = symbol.start_line - 1 + sig_lines
    while i < len(lines) and i < symbol.end_line and not lines[i].strip():
        i += 1
    if i >= len(lines) or not lines[i].lstrip().startswith(('"""', "'''", 'r"""')):
        return []
    quote = '"""' if '"""' in lines[i] else "'''"
    doc = [lines[i].rstrip("\n")]
    if lines[i].count(quote) < 2:
        j = i + 1
        while j < len(lines) and j < symbol.end_line and quote not in lines[j]:
            doc.append(lines[j].rstrip("\n"))
            j += 1
        if j < len(lines):
            doc.append(lines[j].rstrip("\n"))
    return doc[:3] + (["    ..."] if len(doc) > 3 else [])


def outline(text: str, symbols: list[Symbol], language: str | None) -> str:
    """Signatures (and Python docstrings) with their line numbers: a file reduced to its map."""
    if not symbols:
        return ""
    lines = text.split("\n")
    out = []
    for sym in symbols:
        indent = "    " if sym.parent else ""
        sig = sym.signature.replace("\n", "\n" + indent)
        out.append(f"{indent}{sig}  # L{sym.start_line}-L{sym.end_line}")
        out.extend(indent + d.strip() for d in _docstring_lines(lines, sym, language))
    return "\n".join(out) + "\n"
