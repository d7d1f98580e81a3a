"""The options several commands share are declared once, in app/commands/options.py (issue 27,
item 4): a command that declared `--json`, `--endpoint`, `-t/--tokenizer`, `--host`, `--port` or
the servers' `--shared/--trusted` inline again would let its name, short form or help drift from
the others'. And the shared declarations still work as the inline ones did."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from app.cli import app

COMMANDS = Path(__file__).resolve().parents[2] / "app" / "commands"
#: flags only app/commands/options.py declares (typer derives `--host`/`--port` from a
#: parameter's name when a typer.Option names no flag: those count too)
SHARED_FLAGS = {"--json", "--endpoint", "-e", "--tokenizer", "-t", "--host", "--port"}
#: the switch of a server people may sign in to (`mcp`, `serve api`); `ui`'s `--trusted/--shared`
#: is its own switch (trusted: visitors may read this machine's folders) and stays with `ui`
SHARED_SWITCHES = {"--shared/--trusted"}
#: command files that still declare a shared option inline, until their owner moves them over
#: (issue 27: ask.py's `history --json`, prewarm.py's `--endpoint` and `--json`); empty it then
NOT_YET: set[str] = set()


def _is_typer_option(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Option" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "typer")


def _declared(call: ast.Call) -> list[str]:
    return [a.value for a in call.args if isinstance(a, ast.Constant)
            and isinstance(a.value, str) and a.value.startswith("-")]


def _option_of(annotation: ast.AST | None) -> ast.Call | None:
    """The typer.Option of an `Annotated[T, typer.Option(...)]` annotation, if inline."""
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.slice, ast.Tuple):
        meta = annotation.slice.elts[1:]
        return next((m for m in meta if _is_typer_option(m)), None)
    return None


def inline_shared_options(source: str) -> list[str]:
    """Each inline declaration in SOURCE of a flag or switch that options.py owns."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if _is_typer_option(node):
            for decl in _declared(node):
                if decl in SHARED_SWITCHES or set(decl.split("/")) & SHARED_FLAGS - {"--shared"}:
                    found.append(f"line {node.lineno}: {decl}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for arg in [*node.args.args, *node.args.kwonlyargs]:
                call = _option_of(arg.annotation)
                derived = "--" + arg.arg.replace("_", "-")
                if call is not None and not _declared(call) and derived in SHARED_FLAGS:
                    found.append(f"line {call.lineno}: {derived} (from the name {arg.arg})")
    return found


def test_the_scan_sees_every_way_of_declaring_one_inline():
    source = '''
from typing import Annotated
import typer
X = Annotated[bool, typer.Option("--json")]
def f(host: Annotated[str, typer.Option(help="h")] = "",
      p: Annotated[int, typer.Option("--port", min=1)] = 1,
      t: Annotated[str, typer.Option("-t", "--tokenizer")] = "",
      s: Annotated[bool, typer.Option("--shared/--trusted")] = False,
      trusted: Annotated[bool, typer.Option("--trusted/--shared")] = False,
      other: Annotated[str, typer.Option("--jsonl")] = ""): ...
'''
    found = sorted(f.split(": ", 1)[1] for f in inline_shared_options(source))
    assert found == ["--host (from the name host)", "--json", "--port", "--shared/--trusted",
                     "--tokenizer", "-t"]


@pytest.mark.parametrize("path", sorted(p for p in COMMANDS.glob("*.py")
                                        if p.name not in ("options.py", "__init__.py")),
                         ids=lambda p: p.name)
def test_commands_use_the_shared_options(path):
    found = inline_shared_options(path.read_text(encoding="utf-8"))
    if path.name in NOT_YET:
        return
    assert not found, (f"{path.name} declares shared options inline; use app/commands/options.py "
                       f"(JsonOpt, json_option, EndpointOpt, ...): {found}")


def test_not_yet_lists_only_files_that_still_need_it():
    """So the exemption shrinks as files move over, and cannot outlive them."""
    for name in NOT_YET:
        assert inline_shared_options((COMMANDS / name).read_text(encoding="utf-8")), name


def test_options_declares_each_shared_flag_once():
    source = (COMMANDS / "options.py").read_text(encoding="utf-8")
    declared = [d for n in ast.walk(ast.parse(source)) if _is_typer_option(n) for d in _declared(n)]
    for flag in SHARED_FLAGS:
        assert sum(flag in d.split("/") for d in declared) == 1, flag
    for switch in SHARED_SWITCHES:
        assert declared.count(switch) == 1, switch


# --- the flags still work ---------------------------------------------------------------------

def _params(*path: str) -> dict:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: p for p in command.params}


def test_json_prints_json():
    runner = CliRunner()
    result = runner.invoke(app, ["cache", "stats", "--json"])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), dict)
    result = runner.invoke(app, ["plan", "--gpus", "1xH100", "--context", "8192", "--json"])
    assert result.exit_code == 0, result.output
    assert "model" in json.loads(result.stdout)
    result = runner.invoke(app, ["users", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("path", [("cache", "stats"), ("corpora", "list"), ("corpora", "show"),
                                  ("eval", "list"), ("users", "list"), ("audit",), ("search",),
                                  ("plan",), ("complete",), ("ingest",)])
def test_json_is_an_off_by_default_flag_with_help(path):
    option = _params(*path)["as_json"]
    assert option.opts == ["--json"] and option.is_flag and option.default is False
    assert option.help and "JSON" in option.help


def test_each_command_keeps_its_own_words_for_json():
    assert _params("plan")["as_json"].help == "print the plan as JSON only"
    assert _params("complete")["as_json"].help == "print one JSON object"
    assert _params("ingest")["as_json"].help == "print the report as JSON"
    assert _params("cache", "stats")["as_json"].help == "print JSON only"


def test_endpoint_and_tokenizer_keep_their_short_forms():
    for path in [("complete",), ("eval", "run"), ("mcp",), ("serve", "api")]:
        endpoint = _params(*path)["endpoint"]
        assert set(endpoint.opts) == {"--endpoint", "-e"} and endpoint.default is None
        assert "SCOUTLENS_ENDPOINT" in endpoint.help
    for path, words in [(("ingest",), "cl100k"), (("eval", "run"), "counts lengths")]:
        tokenizer = _params(*path)["tokenizer"]
        assert set(tokenizer.opts) == {"--tokenizer", "-t"} and words in tokenizer.help


@pytest.mark.parametrize("path, port, help_has, checked", [
    (("mcp",), 8765, "http: address", True), (("serve", "api"), 8700, "SCOUTLENS_AUTH", True),
    (("serve", "vllm"), 8000, "address to listen on", True), (("ui",), 8501, "no login", False)])
def test_servers_listen_where_they_did(path, port, help_has, checked):
    params = _params(*path)
    assert params["port"].opts == ["--port"] and params["port"].default == port
    assert (params["port"].min, params["port"].max) == ((1, 65535) if checked else (None, None))
    assert params["host"].opts == ["--host"] and params["host"].default == "127.0.0.1"
    assert help_has in params["host"].help


def test_the_sign_in_switch_of_mcp_and_serve_api():
    for path, words in [(("mcp",), "no local paths in"), (("serve", "api"), "proxy's headers")]:
        shared = _params(*path)["shared"]
        assert (shared.opts, shared.secondary_opts) == (["--shared"], ["--trusted"])
        assert shared.default is None and words in shared.help


def test_a_port_out_of_range_is_refused_before_anything_starts():
    result = CliRunner().invoke(app, ["serve", "api", "--port", "0"])
    assert result.exit_code == 2 and "--port" in result.output
