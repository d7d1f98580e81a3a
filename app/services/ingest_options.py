"""Ingest policy the services apply whatever the entry point (CLI, UI, ask PATH)."""

from __future__ import annotations

from dataclasses import replace

from app.settings import get_settings
from ingest.pipeline import PipelineOptions


def with_workdir(options: PipelineOptions) -> PipelineOptions:
    """Archives are extracted under SCOUTLENS_HOME (not the system's temp folder), where the
    next run sweeps what a killed one left."""
    if options.collect.workdir is not None:
        return options
    workdir = get_settings().home_dir / "tmp"
    return replace(options, collect=replace(options.collect, workdir=workdir))
