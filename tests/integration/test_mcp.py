"""`scoutlens mcp` over stdio, driven by the MCP SDK's own client: the tools a client lists,
then a real repository ingested, searched, read, packed to a budget (counted with the target
tokenizer) and asked about on the embedded model; bad arguments are tool errors and the server
keeps answering."""

from __future__ import annotations

import json
import os
import sys

import anyio
from helpers import REPO, make_facts_repo
from mcp import ClientSession, StdioServerParameters, stdio_client

from ingest.tokenizers import load_tokenizer

TOOLS = {"list_corpora", "ingest", "search", "read_source", "pack", "ask", "analyze",
         "analyses"}


def _params(home, model_dir) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOUTLENS_")}
    env |= {"SCOUTLENS_HOME": str(home), "SCOUTLENS_MODEL": str(model_dir),
            "SCOUTLENS_WORKERS": "1"}
    return StdioServerParameters(command=sys.executable, args=["-m", "app.cli", "mcp"],
                                 env=env, cwd=str(REPO))


def _json(result) -> dict:
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


def _error(result) -> str:
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_a_client_ingests_searches_reads_packs_and_asks(tmp_path, model_dir):
    repo = make_facts_repo(tmp_path / "facts")
    out = tmp_path / "packed.xml"
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value, total, message) -> None:
        progress.append((value, message))

    async def run() -> None:
        with open(tmp_path / "server.log", "w") as errlog:
            async with stdio_client(_params(tmp_path / "home", model_dir), errlog=errlog) as (
                    read, write), ClientSession(read, write) as session:
                await session.initialize()
                listed = (await session.list_tools()).tools
                assert {t.name for t in listed} == TOOLS
                for tool in listed:  # what a client shows a person
                    assert tool.description and tool.input_schema["type"] == "object"
                    for name, prop in tool.input_schema["properties"].items():
                        assert prop.get("description"), (tool.name, name)
                search_schema = next(t for t in listed if t.name == "search").input_schema
                assert set(search_schema["required"]) == {"corpus", "query"}

                assert _json(await session.call_tool("list_corpora", {})) == {"corpora": []}
                report = _json(await session.call_tool(
                    "ingest", {"paths": [str(repo)], "corpus": "facts"},
                    progress_callback=on_progress))
                assert report["corpus"] == "facts" and report["summary"]["added"] == 3
                values = [v for v, _ in progress]
                assert values and values == sorted(set(values))  # rising, as the spec wants
                names = [c["name"] for c in _json(await session.call_tool(
                    "list_corpora", {}))["corpora"]]
                assert names == ["facts"]

                hits = _json(await session.call_tool(
                    "search", {"corpus": "facts", "query": "load_config", "k": 3}))["hits"]
                assert hits[0]["path"].endswith("src/config.py")
                assert hits[0]["lines"] and "symbol" in hits[0]["signals"]

                read = _json(await session.call_tool("read_source", {
                    "corpus": "facts", "path": hits[0]["path"], "start_line": 3,
                    "end_line": 6}))
                assert read["lines"] == [3, 6]
                assert read["text"].splitlines()[0] == "3  RETRY_LIMIT = 7"

                packed = await session.call_tool("pack", {
                    "target": ["facts"], "budget": "4k", "tokenizer": "o200k"})
                summary = _json(packed)
                text = packed.content[1].text
                o200k = load_tokenizer("o200k", tmp_path / "home" / "cache")
                assert summary["total_tokens"] <= 4096 and summary["tokenizer"] == "o200k"
                assert abs(o200k.count(text) - summary["total_tokens"]) <= 3
                assert "The vault code is 7291." in text
                wrote = _json(await session.call_tool("pack", {
                    "target": ["facts"], "budget": 4096, "out": str(out)}))
                assert wrote["out"] == str(out) and "7291" in out.read_text()
                inside = _error(await session.call_tool("pack", {
                    "target": [str(repo)], "out": str(repo / "packed.xml")}))
                assert "inside the input folder" in inside

                answer = _json(await session.call_tool("ask", {
                    "corpus": "facts", "question": "What is the vault code?",
                    "max_tokens": 48}))
                assert answer["mode"] == "full" and answer["share_of_corpus"] == 1.0
                places = {s["path"] for s in answer["citations"] + answer["matched_evidence"]}
                assert any(p.endswith("NOTES.md") for p in places), answer
                again = _json(await session.call_tool("ask", {
                    "corpus": "facts", "question": "Which file sets RETRY_LIMIT?",
                    "max_tokens": 16}))
                assert again["usage"]["cached_tokens"] > 0  # the model stayed loaded

                # bad arguments: tool errors with the CLI's one line, and the server goes on
                assert "no such corpus: nope" in _error(await session.call_tool(
                    "search", {"corpus": "nope", "query": "x"}))
                assert "not a token budget: 'lots'" in _error(await session.call_tool(
                    "pack", {"target": ["facts"], "budget": "lots"}))
                assert "over" in _error(await session.call_tool(
                    "pack", {"target": ["facts"], "budget": 16}))
                assert "no such file or folder" in _error(await session.call_tool(
                    "ingest", {"paths": [str(tmp_path / "missing")]}))
                assert "k:" in _error(await session.call_tool(
                    "search", {"corpus": "facts", "query": "x", "k": 0}))
                assert "question: missing" in _error(await session.call_tool(
                    "ask", {"corpus": "facts"}))
                assert "has 8 lines" in _error(await session.call_tool("read_source", {
                    "corpus": "facts", "path": hits[0]["path"], "start_line": 99}))
                assert _json(await session.call_tool("list_corpora", {}))["corpora"]

    anyio.run(run)
