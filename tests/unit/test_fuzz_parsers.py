"""Property tests for the parsers that take user text: a correct result or a one-line
IngestError, never another exception (Hypothesis generates the inputs)."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.services.ingest_options import parse_size
from ingest.archives import ArchiveError, _member_parts, extract_archive
from ingest.collect import shown_name
from ingest.pack import parse_budget
from ingest.types import IngestError

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
units = st.sampled_from(["", "k", "K", "m", "M", "KB", "MB", "GB", "B", "TB", "e", " "])
numbers = st.one_of(st.integers(-10**30, 10**30).map(str), st.floats(allow_nan=True).map(str),
                    st.text(max_size=12))
sizes = st.one_of(st.text(max_size=30), st.tuples(numbers, units).map("".join))


def _one_line(exc: Exception) -> None:
    assert "\n" not in str(exc) and str(exc)


@FUZZ
@given(sizes)
def test_budget_is_positive_or_refused(text):
    try:
        value = parse_budget(text)
    except IngestError as exc:
        _one_line(exc)
    else:
        assert isinstance(value, int) and value >= 1


@FUZZ
@given(sizes)
def test_size_is_non_negative_or_refused(text):
    try:
        value = parse_size(text)
    except IngestError as exc:
        _one_line(exc)
    else:
        assert isinstance(value, int) and value >= 0


def test_sizes_known_answers():
    assert parse_size("10MB") == 10 * 1024**2
    assert parse_size("0") == 0
    assert parse_size(" 1.5kb ") == 1536
    assert parse_budget("128k") == 131072 and parse_budget("10M") == 10 * 1024**2


@FUZZ
@given(st.text(max_size=60))
def test_member_names_stay_inside_the_destination(name):
    parts, reason = _member_parts(name)
    if reason is None:
        assert all(p not in ("", ".", "..") and "/" not in p for p in parts)
        dest = Path("/dest")
        assert dest.joinpath(*parts).resolve().is_relative_to(dest) or not parts


@FUZZ
@given(st.binary(max_size=40))
def test_any_file_name_is_shown_on_one_printable_line(raw):
    name = os.fsdecode(raw.replace(b"/", b"_").replace(b"\0", b"_")) or "x"
    shown, flags = shown_name(name)
    shown.encode("utf-8")  # no lone surrogates left
    assert not any(ord(c) < 32 or ord(c) == 127 for c in shown)
    if not flags:
        assert shown == name


@pytest.mark.filterwarnings("ignore:Duplicate name")
@FUZZ
@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.binary(max_size=200)),
                max_size=6), st.sampled_from(["zip", "tar"]))
def test_archives_with_any_member_names_extract_inside(tmp_path_factory, members, kind):
    tmp = tmp_path_factory.mktemp("fz")
    archive = tmp / f"a.{kind}"
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive, "w") as zf:
                for name, data in members:
                    zf.writestr(name, data)
        else:
            with tarfile.open(archive, "w") as tf:
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    except (ValueError, UnicodeEncodeError, OSError, IndexError):
        return  # the writer itself refuses such a name
    dest = tmp / "out"
    try:
        extract_archive(archive, dest)
    except ArchiveError as exc:
        _one_line(exc)
        return
    for path in dest.rglob("*"):
        assert path.resolve().is_relative_to(dest.resolve())
    assert {p.name for p in tmp.iterdir()} <= {archive.name, "out"}


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"", b"\x1f\x8b"]))
def test_corrupt_archives_are_one_line_errors(tmp_path_factory, data, magic):
    tmp = tmp_path_factory.mktemp("fc")
    archive = tmp / ("x.zip" if magic.startswith(b"PK") else "x.tar.gz")
    archive.write_bytes(magic + data)
    try:
        extract_archive(archive, tmp / "out")
    except ArchiveError as exc:
        _one_line(exc)
