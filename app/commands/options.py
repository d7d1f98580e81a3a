"""Options several commands share, declared once so their names and help never drift apart
(the model server: `--backend`, `--endpoint`, `-m/--model`; ingest policy: `--keep`,
`--max-file-size`, `--fps`, `--max-frames`, `-t/--tokenizer`; `--json`)."""

from __future__ import annotations

from typing import Annotated

import typer

BackendOpt = Annotated[str | None, typer.Option(
    "--backend", "-b", help="embedded (in-process) | openai (a server); default: openai when an "
    "endpoint is set, else SCOUTLENS_BACKEND (embedded)")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint", "-e", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1; "
    "default: SCOUTLENS_ENDPOINT")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="embedded: a model folder; openai: the served model name; default: "
    "SCOUTLENS_MODEL, else the bundled model or the server's first")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON only")]
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
TokenizerOpt = Annotated[str | None, typer.Option(
    "--tokenizer", "-t", help="cl100k | o200k | llama4:PATH | hf:DIR | embedded")]
MaxSizeOpt = Annotated[str, typer.Option("--max-file-size", help="skip larger files, e.g. 10MB")]
FpsOpt = Annotated[float, typer.Option("--fps", help="video: candidate frames per second")]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", help="video: frames kept at most")]


def pipeline_options(keep: list[str] | None, max_file_size: str, ocr: bool = True, fps: float = 1.0,
             max_frames: int = 120):
    """The ingest policy for what the user chose (app.services.ingest_options, loaded only
    when a command runs)."""
    from app.services.ingest_options import ingest_options

    return ingest_options(keep or [], max_file_size, ocr, fps, max_frames)
