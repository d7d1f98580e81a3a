"""Language by file extension (names are tree-sitter-language-pack's grammar names)."""

from __future__ import annotations

from pathlib import PurePosixPath

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala", ".swift": "swift", ".rb": "ruby", ".php": "php", ".cs": "csharp",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".hxx": "cpp", ".m": "objc", ".lua": "lua", ".r": "r", ".jl": "julia",
    ".sh": "bash", ".bash": "bash", ".zsh": "bash", ".ps1": "powershell", ".pl": "perl",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml",
    ".clj": "clojure", ".dart": "dart", ".zig": "zig", ".sql": "sql", ".proto": "proto",
    ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss", ".vue": "vue",
    ".svelte": "svelte", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml",
    ".xml": "xml", ".md": "markdown", ".rst": "rst", ".tex": "latex", ".cmake": "cmake",
    ".tf": "hcl", ".nix": "nix", ".gradle": "groovy", ".groovy": "groovy",
}
FILENAMES: dict[str, str] = {
    "Makefile": "make", "makefile": "make", "GNUmakefile": "make", "Dockerfile": "dockerfile",
    "CMakeLists.txt": "cmake",
}
#: languages whose definitions are worth extracting as symbols (the rest are data or prose)
CODE_LANGUAGES = {
    "python", "javascript", "typescript", "tsx", "go", "rust", "java", "kotlin", "scala",
    "swift", "ruby", "php", "csharp", "c", "cpp", "objc", "lua", "r", "julia", "bash",
    "powershell", "perl", "elixir", "erlang", "haskell", "ocaml", "clojure", "dart", "zig",
    "groovy",
}


def language_for(path: str) -> str | None:
    p = PurePosixPath(path)
    if p.name in FILENAMES:
        return FILENAMES[p.name]
    return EXTENSIONS.get(p.suffix.lower())


def is_code(language: str | None) -> bool:
    return language in CODE_LANGUAGES
