"""Options several commands share, declared once so their names and help never drift apart
(the model server: `--backend`, `--endpoint`, `-m/--model`; ingest policy: `--keep`,
`--max-file-size`, `--fps`, `--max-frames`, `-t/--tokenizer`; `--json`; a server's `--host`,
`--port` and `--shared/--trusted`), and the one check of free text (a question, a query, a
name) that every command's arguments go through.

A command whose option means a little more than the common help says (`plan --json` prints the
plan) passes its own help to the factory (`json_option`, ...): the flag stays declared here, the
help stays with the command it describes (tests/unit/test_cli_options_once.py keeps it so)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Annotated

import typer

from common.errors import UserError

BackendOpt = Annotated[str | None, typer.Option(
    "--backend", "-b", help="embedded (in-process) | openai (a server); default: openai when an "
    "endpoint is set, else SCOUTLENS_BACKEND (embedded)")]
ENDPOINT_HELP = "OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1"


def endpoint_option(help: str = f"{ENDPOINT_HELP}; default: SCOUTLENS_ENDPOINT"):
    """`-e/--endpoint`; `prewarm` requires it, so its help names no default."""
    return typer.Option("--endpoint", "-e", help=help)


EndpointOpt = Annotated[str | None, endpoint_option()]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="embedded: a model folder; openai: the served model name; default: "
    "SCOUTLENS_MODEL, else the bundled model or the server's first")]


def json_option(help: str = "print JSON only"):
    """`--json`, with the command's own words for what it prints where it has them."""
    return typer.Option("--json", help=help)


JsonOpt = Annotated[bool, json_option()]
# vLLM's KV offloading (`serve vllm`, `plan`)
OffloadGbOpt = Annotated[float | None, typer.Option(
    "--offload-gb", help="GiB of host memory for evicted prefix KV (vLLM's native KV "
    "offloading; GPUs only)")]
OffloadDirOpt = Annotated[str | None, typer.Option(
    "--offload-dir", help="folder for prefix KV files behind the host memory; they survive a "
    "restart (GPUs only; needs --offload-gb)")]

# the names app.services.ingest_options.KEEPABLE takes (not imported here: it loads the ingest
# pipeline, ~0.5 s that `--help` and a re-pack should not pay; a test keeps them equal)
KEEP_HELP = "binary, lockfiles, generated, vendored, gitignore, size, secrets"
KeepOpt = Annotated[list[str] | None, typer.Option(
    "--keep", help=f"switch a noise rule off, or keep secrets' values unredacted (repeatable): "
                   f"{KEEP_HELP}")]


def tokenizer_option(help: str = "cl100k | o200k | llama4:PATH | hf:DIR | embedded"):
    """`-t/--tokenizer`: the ingest policy's, and `eval run`'s, which counts lengths."""
    return typer.Option("--tokenizer", "-t", help=help)


TokenizerOpt = Annotated[str | None, tokenizer_option()]
MaxSizeOpt = Annotated[str, typer.Option("--max-file-size", help="skip larger files, e.g. 10MB")]
FpsOpt = Annotated[float, typer.Option("--fps", help="video: candidate frames per second")]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", help="video: frames kept at most")]
MaxImagePixelsOpt = Annotated[int | None, typer.Option(
    "--max-image-pixels", help="pictures: refuse one (or a TIFF page) larger than this many "
    "pixels, from its header; default: SCOUTLENS_MAX_IMAGE_PIXELS (100,000,000)")]


# --- servers (`serve vllm`, `serve api`, `mcp`, `ui`; `plan` prints a port) ------------------

LOOPBACK = "127.0.0.1"
#: a listening address's help where people from beyond loopback must sign in
SIGN_IN_HOST_HELP = ("address to listen on; beyond loopback needs SCOUTLENS_AUTH=header (a "
                     "signing-in proxy)")


def port_option(help: str | None = None, *, checked: bool = True):
    """`--port`, refused outside 1-65535 where this process listens on it (`checked`); `ui` and
    `plan` pass it on unchecked, as they always have."""
    return typer.Option("--port", help=help, **({"min": 1, "max": 65535} if checked else {}))


def host_option(help: str = "address to listen on"):
    """`--host`, the address a server listens on (LOOPBACK unless told)."""
    return typer.Option("--host", help=help)


def shared_option(help: str):
    """`--shared/--trusted` of a server people may sign in to: None (neither given) lets the
    address decide (app.servers.signin.needs_sign_in)."""
    return typer.Option("--shared/--trusted", help=help)


PortOpt = Annotated[int, port_option()]
HostOpt = Annotated[str, host_option()]
SignInHostOpt = Annotated[str, host_option(SIGN_IN_HOST_HELP)]


def pipeline_options(keep: list[str] | None, max_file_size: str, ocr: bool = True, fps: float = 1.0,
             max_frames: int = 120, max_image_pixels: int | None = None):
    """The ingest policy for what the user chose (app.services.ingest_options, loaded only
    when a command runs)."""
    from app.services.ingest_options import ingest_options

    return ingest_options(keep or [], max_file_size, ocr, fps, max_frames, max_image_pixels)


# --- free text --------------------------------------------------------------------------------

#: what is not UTF-8 text once in Python: bytes a shell passed that are not UTF-8 arrive
#: surrogate-escaped (U+DC80-U+DCFF), and a lone surrogate cannot be encoded at all; either
#: would fail deep inside (the database, the tokenizer, a JSON encoder) with a traceback
_NOT_TEXT = re.compile("[\ud800-\udfff]")
#: how an argument is named in the message (its parameter name otherwise)
_WHAT = {"as_user": "user name (--as)", "name": "corpus name", "corpus": "corpus name",
         "target": "corpus name or path", "conversation": "conversation id", "run_id": "run id",
         "run_a": "run id", "run_b": "run id", "group": "group name", "user": "user name"}


class NotText(UserError):
    """A free-text argument that is not valid UTF-8 text: exit code 2, as for any bad
    argument (the CLI's main prints the one line)."""

    exit_code = 2


def check_text(value: str, what: str) -> str:
    """`value` when it is text that can be stored, sent and printed; else NotText."""
    if _NOT_TEXT.search(value):
        raise NotText(f"the {what} is not valid UTF-8 text")
    return value


def _values(value: str | Iterable[str] | None) -> Iterable[str]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def _what(param: typer.CallbackParam) -> str:
    name = param.name or "argument"
    return _WHAT.get(name, name.replace("_", " "))


def text_arg(param: typer.CallbackParam, value):
    """Typer callback for a free-text argument (a question, a query, a name): every command
    declares its text with it, so one rule refuses what is not UTF-8, before any work."""
    for item in _values(value):
        check_text(item, _what(param))
    return value


def text_or_path_arg(param: typer.CallbackParam, value):
    """Typer callback for "a corpus name or a path": text too, since a path is stored as its
    root, but a path that exists is told the way round it (names found inside a folder may
    hold any bytes: they are shown escaped)."""
    for item in _values(value):
        if not _NOT_TEXT.search(item):
            continue
        if os.path.lexists(os.path.expanduser(item)):
            raise NotText("the path is not valid UTF-8 text: give the folder it is in instead "
                          "(names inside a folder may hold any bytes)")
        raise NotText(f"the {_what(param)} is not valid UTF-8 text")
    return value


DeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="embedded: where the model runs, cpu | cuda | auto (the GPU when torch "
    "sees one); default: SCOUTLENS_DEVICE, else auto", callback=text_arg)]
