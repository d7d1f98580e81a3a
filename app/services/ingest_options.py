"""Ingest policy, one for every entry point (CLI, web UI, `ask PATH`, pack of paths): which noise
rules apply, the size limit, OCR, video sampling, secrets, where archives are extracted, and
whether video frames carry images (they do when the corpus's tokenizer is Llama 4's, whose model
reads them). Entry points only say what the user chose; everything else is decided here."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from app.settings import get_settings
from common import units
from ingest.collect import CollectOptions
from ingest.documents import ProcessOptions
from ingest.filters import FilterOptions, NoiseFilter
from ingest.pictures import PictureOptions
from ingest.pipeline import PipelineOptions
from ingest.types import IngestError
from ingest.video import VideoOptions

#: noise rules that `--keep RULE` switches off
RULES = ("binary", "lockfiles", "generated", "vendored", "gitignore", "size")
#: what `--keep` takes: the rules, and `secrets` (their values kept unredacted, still flagged)
KEEPABLE = (*RULES, "secrets")
DEFAULT_MAX_FILE_SIZE = "10MB"


def parse_size(text: str) -> int:
    """Bytes from `500KB`, `10MB`, `1.5GB` or a plain number; 0 means no limit. common.units'
    rules, refused with an IngestError."""
    return units.parse_size(text, error=IngestError)


def ingest_options(keep: Iterable[str] = (), max_file_size: str = DEFAULT_MAX_FILE_SIZE,
                   ocr: bool = True, fps: float = 1.0, max_frames: int = 120,
                   max_image_pixels: int | None = None) -> PipelineOptions:
    """The pipeline options for what a user chose; the defaults are what every entry point
    uses when the user chose nothing. `keep` items may be comma-separated. A picture's pixel
    limit is SCOUTLENS_MAX_IMAGE_PIXELS unless `max_image_pixels` says otherwise."""
    kept = [k.strip() for item in keep for k in item.split(",") if k.strip()]
    unknown = set(kept) - set(KEEPABLE)
    if unknown:
        raise IngestError(f"unknown rule for --keep: {', '.join(sorted(unknown))} "
                          f"(rules: {', '.join(KEEPABLE)})")
    if not (fps > 0 and math.isfinite(fps)) or max_frames < 1:
        raise IngestError("--fps must be positive and --max-frames at least 1")
    if max_image_pixels is not None and max_image_pixels < 1:
        raise IngestError("--max-image-pixels must be at least 1")
    pixels = max_image_pixels or get_settings().max_image_pixels
    size = 0 if "size" in kept else parse_size(max_file_size)
    noise = NoiseFilter(FilterOptions(
        binary="binary" not in kept, lockfiles="lockfiles" not in kept,
        generated="generated" not in kept, vendored="vendored" not in kept,
        max_file_bytes=size))
    return PipelineOptions(
        CollectOptions(gitignore="gitignore" not in kept,
                       skip_vendored_dirs="vendored" not in kept),
        ProcessOptions(ocr=ocr, noise=noise, video=VideoOptions(fps=fps, max_frames=max_frames),
                       redact_secrets="secrets" not in kept,
                       pictures=PictureOptions(max_pixels=pixels)),
        get_settings().workers)


def for_corpus(options: PipelineOptions | None, tokenizer_spec: str) -> PipelineOptions:
    """`options` (the defaults when None) completed with what follows from the corpus and the
    installation: frames carry images for a Llama 4 tokenizer, saved under SCOUTLENS_HOME; archives
    are extracted under SCOUTLENS_HOME, where the next run sweeps what a killed one left."""
    options = options or ingest_options()
    settings = get_settings()
    vision = tokenizer_spec.startswith("llama4:")
    process = replace(options.process, vision=vision,
                      frames_dir=settings.frames_dir if vision else None)
    collect = options.collect
    if collect.workdir is None:
        collect = replace(collect, workdir=settings.home_dir / "tmp")
    return replace(options, collect=collect, process=process)
