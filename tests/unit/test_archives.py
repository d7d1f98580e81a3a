"""Tests for ingest.archives: real archives built in tmp_path, no mocks."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from ingest.archives import (
    ArchiveError,
    ArchiveLimits,
    Extracted,
    _Budget,
    _copy,
    _Entry,
    _MemberRefused,
    extract_archive,
    is_archive,
)
from ingest.types import IngestError

TREE: dict[str, bytes] = {
    "README.md": b"# hello\n",
    "src/main.py": b"print('hi')\n",
    "src/pkg/util.py": b"def f():\n    return 1\n",
    "src/pkg/deep/er/data.bin": bytes(range(256)) * 40,
    "docs/empty.txt": b"",
}


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def add_tar_file(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tf.addfile(info, io.BytesIO(data))


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            add_tar_file(tf, name, data)
    return path


# --- normal extraction ------------------------------------------------------------------------


def test_zip_roundtrip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "tree.zip", TREE)
    dest = tmp_path / "out" / "nested"  # parents are created
    result = extract_archive(archive, dest)
    assert isinstance(result, Extracted)
    assert result.root == dest
    assert result.refused == []
    assert read_tree(dest) == TREE


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        (".tar", "w"),
        (".tar.gz", "w:gz"),
        (".tgz", "w:gz"),
        (".tar.bz2", "w:bz2"),
        (".tar.xz", "w:xz"),
    ],
)
def test_tar_roundtrip(tmp_path: Path, suffix: str, mode: str) -> None:
    archive = make_tar(tmp_path / f"tree{suffix}", TREE, mode)
    result = extract_archive(archive, tmp_path / "out")
    assert result.refused == []
    assert read_tree(tmp_path / "out") == TREE


def test_directory_entries_and_dot_prefix(tmp_path: Path) -> None:
    archive = tmp_path / "dirs.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in (".", "./a", "./a/b"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        add_tar_file(tf, "./a/b/c.txt", b"c")
        info = tarfile.TarInfo("./empty-dir")
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
    dest = tmp_path / "out"
    result = extract_archive(archive, dest)
    assert result.refused == []
    assert (dest / "a" / "b" / "c.txt").read_bytes() == b"c"
    assert (dest / "empty-dir").is_dir()


def test_permissions_are_not_taken_from_archive(tmp_path: Path) -> None:
    archive = tmp_path / "modes.tar"
    with tarfile.open(archive, "w") as tf:
        add_tar_file(tf, "run.sh", b"#!/bin/sh\n", mode=0o4777)
    zarchive = tmp_path / "modes.zip"
    with zipfile.ZipFile(zarchive, "w") as zf:
        info = zipfile.ZipInfo("run.sh")
        info.external_attr = (stat.S_IFREG | 0o4777) << 16
        zf.writestr(info, b"#!/bin/sh\n")
    for arc, out in ((archive, tmp_path / "t"), (zarchive, tmp_path / "z")):
        extract_archive(arc, out)
        mode = (out / "run.sh").stat().st_mode
        assert stat.S_ISREG(mode)
        assert mode & 0o7111 == 0  # no exec, setuid, setgid or sticky bits


# --- unsafe names and member types --------------------------------------------------------------


def test_zip_path_traversal_is_refused(tmp_path: Path) -> None:
    bad = ["../evil.txt", "/abs.txt", "a/../../x.txt", "C:/win.txt", "..\\evil2.txt", "\\abs2.txt"]
    members = {name: b"evil" for name in bad}
    members["ok/good.txt"] = b"good"
    members["a/fine.txt"] = b"fine"
    archive = make_zip(tmp_path / "evil.zip", members)
    # Archive and dest both live two levels down, so escapes would land in watched folders.
    dest = tmp_path / "work" / "out"
    (tmp_path / "work").mkdir()
    result = extract_archive(archive, dest)

    assert read_tree(dest) == {"ok/good.txt": b"good", "a/fine.txt": b"fine"}
    assert {name for name, _ in result.refused} == set(bad)
    assert all(reason for _, reason in result.refused)
    reasons = dict(result.refused)
    assert "absolute" in reasons["/abs.txt"]
    assert "drive letter" in reasons["C:/win.txt"]
    assert ".." in reasons["../evil.txt"]
    # Nothing escaped: the only files anywhere under tmp_path are the archive and good members.
    assert all_files(tmp_path) == {"evil.zip", "work/out/ok/good.txt", "work/out/a/fine.txt"}
    assert not Path("/abs.txt").exists()
    assert not Path("/abs2.txt").exists()


def test_tar_path_traversal_is_refused(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "evil.tar.gz",
        {"../up.txt": b"x", "/etc/abs.txt": b"x", "ok.txt": b"ok", "d/../../up2.txt": b"x"},
    )
    (tmp_path / "work").mkdir()
    dest = tmp_path / "work" / "out"
    result = extract_archive(archive, dest)
    assert read_tree(dest) == {"ok.txt": b"ok"}
    assert {n for n, _ in result.refused} == {"../up.txt", "/etc/abs.txt", "d/../../up2.txt"}
    assert all_files(tmp_path) == {"evil.tar.gz", "work/out/ok.txt"}


def test_tar_links_and_devices_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tf:
        add_tar_file(tf, "file.txt", b"content")
        sym = tarfile.TarInfo("passwd")
        sym.type = tarfile.SYMTYPE
        sym.linkname = "/etc/passwd"
        tf.addfile(sym)
        hard = tarfile.TarInfo("hard.txt")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "file.txt"
        tf.addfile(hard)
        # A symlink to a folder followed by a file "through" it must not write outside dest.
        escape = tarfile.TarInfo("escape")
        escape.type = tarfile.SYMTYPE
        escape.linkname = str(tmp_path)
        tf.addfile(escape)
        add_tar_file(tf, "escape/pwned.txt", b"pwned")
        dev = tarfile.TarInfo("null")
        dev.type = tarfile.CHRTYPE
        dev.devmajor, dev.devminor = 1, 3
        tf.addfile(dev)
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        tf.addfile(fifo)

    dest = tmp_path / "out"
    result = extract_archive(archive, dest)
    reasons = dict(result.refused)
    assert set(reasons) == {"passwd", "hard.txt", "escape", "null", "pipe"}
    assert "symbolic link" in reasons["passwd"]
    assert "hard link" in reasons["hard.txt"]
    assert "device" in reasons["null"]
    for name in ("passwd", "hard.txt", "null", "pipe"):
        assert not os.path.lexists(dest / name)
    assert not (dest / "escape").is_symlink()
    assert (dest / "escape" / "pwned.txt").read_bytes() == b"pwned"  # a real folder in dest
    assert not (tmp_path / "pwned.txt").exists()
    assert (dest / "file.txt").read_bytes() == b"content"


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("passwd")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
        zf.writestr("real.txt", b"real")
    dest = tmp_path / "out"
    result = extract_archive(archive, dest)
    assert result.refused == [("passwd", "symbolic link (not followed)")]
    assert not os.path.lexists(dest / "passwd")
    assert read_tree(dest) == {"real.txt": b"real"}


def test_pax_name_with_nul_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "nul.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"path": "bad\x00name.txt"}
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
        add_tar_file(tf, "good.txt", b"g")
    with tarfile.open(archive) as tf:
        names = tf.getnames()
    if not any("\x00" in n for n in names):
        pytest.skip("this tarfile does not keep NUL bytes in pax names")
    result = extract_archive(archive, tmp_path / "out")
    assert [reason for _, reason in result.refused] == ["name contains a NUL byte"]
    assert read_tree(tmp_path / "out") == {"good.txt": b"g"}


def test_file_and_folder_name_conflict_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "conflict.tar", {"a": b"file", "a/b.txt": b"under"}, "w")
    result = extract_archive(archive, tmp_path / "out")
    assert [name for name, _ in result.refused] == ["a/b.txt"]
    assert (tmp_path / "out" / "a").read_bytes() == b"file"


# --- bombs and limits -------------------------------------------------------------------------


def test_zip_bomb_member_is_refused_and_the_rest_kept(tmp_path: Path) -> None:
    members = {"a.txt": b"keep me", "zeros.bin": bytes(50 * 1024**2), "b.txt": b"me too"}
    archive = make_zip(tmp_path / "bomb.zip", members)
    assert archive.stat().st_size < 1024**2
    dest = tmp_path / "out"
    result = extract_archive(archive, dest)
    assert [name for name, _ in result.refused] == ["zeros.bin"]
    assert "zip bomb" in result.refused[0][1]
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "b.txt"]
    assert (dest / "a.txt").read_bytes() == b"keep me"


def test_targz_bomb_member_is_refused_and_the_rest_kept(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "bomb.tar.gz", {"a.txt": b"a", "zeros.bin": bytes(50 * 1024**2)})
    dest = tmp_path / "out"
    result = extract_archive(archive, dest)
    assert [name for name, _ in result.refused] == ["zeros.bin"]
    assert "zip bomb" in result.refused[0][1]
    assert [p.name for p in dest.iterdir()] == ["a.txt"]


def test_small_compressible_files_are_not_bombs(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "zeros.zip", {"z.bin": bytes(200_000)})
    assert extract_archive(archive, tmp_path / "out").refused == []
    assert (tmp_path / "out" / "z.bin").stat().st_size == 200_000


def test_total_size_cap(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "big.zip", {"a.txt": b"a" * 600, "b.txt": b"b" * 600,
                                              "c.txt": b"c" * 300})
    dest = tmp_path / "out"
    result = extract_archive(archive, dest, ArchiveLimits(max_total_bytes=1000))
    assert [name for name, _ in result.refused] == ["b.txt"]  # c.txt still fits
    assert "more than" in result.refused[0][1]
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "c.txt"]
    # The same archive fits under a larger cap.
    assert extract_archive(archive, tmp_path / "out2",
                           ArchiveLimits(max_total_bytes=1500)).refused == []


def test_member_count_cap(tmp_path: Path) -> None:
    members = {f"f{i}.txt": b"x" for i in range(5)}
    for archive in (
        make_zip(tmp_path / "many.zip", members),
        make_tar(tmp_path / "many.tgz", members),
    ):
        dest = tmp_path / f"out-{archive.name}"
        with pytest.raises(ArchiveError, match="members"):
            extract_archive(archive, dest, ArchiveLimits(max_members=4))
        assert not dest.exists()


def test_tar_file_size_cap_refuses_the_member(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "big.tar.gz", {"small.txt": b"small", "big.bin": os.urandom(10_000)}
    )
    limits = ArchiveLimits(max_file_bytes=4096)
    dest = tmp_path / "out"
    result = extract_archive(archive, dest, limits)
    assert [name for name, _ in result.refused] == ["big.bin"]
    assert "per-file limit" in result.refused[0][1]
    assert [p.name for p in dest.iterdir()] == ["small.txt"]


def test_streaming_caps_count_real_bytes(tmp_path: Path) -> None:
    """Headers can lie: the copy loop counts what is actually written, not what was declared.

    tarfile and zipfile never return more bytes than declared, so the loop is fed directly.
    """
    out_path = tmp_path / "member.bin"
    entry = _Entry("member.bin", ("member.bin",), False, 10, zipfile.ZipInfo("member.bin"))
    budget = _Budget(ArchiveLimits(max_file_bytes=4096), "lying.zip", 1)
    with open(out_path, "wb") as out, pytest.raises(_MemberRefused, match="per-file limit"):
        _copy(io.BytesIO(bytes(3 * 1024**2)), out, entry, budget, tmp_path / "lying.zip")
    assert out_path.stat().st_size == 0  # refused before the oversized chunk was written

    budget = _Budget(ArchiveLimits(max_total_bytes=2 * 1024**2), "lying.zip", 10**9)
    with open(out_path, "wb") as out, pytest.raises(ArchiveError, match="uncompressed"):
        _copy(io.BytesIO(bytes(3 * 1024**2)), out, entry, budget, tmp_path / "lying.zip")
    assert out_path.stat().st_size == 2 * 1024**2


def test_oversized_tar_extended_header_is_refused(tmp_path: Path) -> None:
    """tarfile reads pax headers whole into memory, so their size is capped."""
    archive = tmp_path / "pax.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("a.txt")
        info.pax_headers = {"comment": "x" * (2 * 1024**2)}
        info.size = 1
        tf.addfile(info, io.BytesIO(b"a"))
    with pytest.raises(ArchiveError, match="extended header"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_failure_mid_extraction_removes_everything(tmp_path: Path) -> None:
    first, second = b"first member, extracted fine\n", b"SECOND-MEMBER-PAYLOAD" * 50
    archive = make_zip(
        tmp_path / "crc.zip",
        {"a/first.txt": first, "b/second.txt": second},
        method=zipfile.ZIP_STORED,
    )
    raw = bytearray(archive.read_bytes())
    pos = raw.index(second)
    raw[pos + 100] ^= 0xFF  # same size, wrong CRC: only found while streaming the member
    archive.write_bytes(bytes(raw))

    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="corrupt archive crc.zip"):
        extract_archive(archive, dest)
    assert not dest.exists()

    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(ArchiveError):
        extract_archive(archive, existing)
    assert list(existing.iterdir()) == []


# --- corrupt and unsupported archives ---------------------------------------------------------


def test_random_bytes_zip_is_corrupt(tmp_path: Path) -> None:
    archive = tmp_path / "junk.zip"
    archive.write_bytes(os.urandom(4096))
    with pytest.raises(ArchiveError, match="corrupt archive junk.zip"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["junk.tar.gz", "junk.tar", "junk.tar.xz"])
def test_random_bytes_tar_is_corrupt(tmp_path: Path, name: str) -> None:
    archive = tmp_path / name
    archive.write_bytes(os.urandom(4096))
    with pytest.raises(ArchiveError, match=f"corrupt archive {name}"):
        extract_archive(archive, tmp_path / "out")


def test_empty_archive_file_is_corrupt(tmp_path: Path) -> None:
    for name in ("empty.zip", "empty.tar"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(ArchiveError, match="corrupt archive"):
            extract_archive(tmp_path / name, tmp_path / f"out-{name}")


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.bz2", ".tar.xz", ".tar"])
def test_truncated_tar_is_corrupt(tmp_path: Path, suffix: str) -> None:
    mode = {".tar.gz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz", ".tar": "w"}[suffix]
    archive = make_tar(
        tmp_path / f"cut{suffix}",
        {"a.bin": os.urandom(100_000), "b.bin": os.urandom(100_000)},
        mode,
    )
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 3 // 4])
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="corrupt archive"):
        extract_archive(archive, dest)
    assert not dest.exists()


def test_truncated_zip_is_corrupt(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "cut.zip", {"a.bin": os.urandom(50_000)})
    archive.write_bytes(archive.read_bytes()[:30_000])
    with pytest.raises(ArchiveError, match="corrupt archive cut.zip"):
        extract_archive(archive, tmp_path / "out")


def test_encrypted_zip_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "secret.zip", {"a.txt": b"secret"})
    raw = bytearray(archive.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = raw.index(signature) + flag_offset
        raw[pos] |= 0x01  # general purpose bit 0: encrypted
    archive.write_bytes(bytes(raw))
    with zipfile.ZipFile(archive) as zf:
        assert zf.infolist()[0].flag_bits & 0x1
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="encrypted"):
        extract_archive(archive, dest)
    assert not dest.exists()


def test_archive_error_is_user_facing() -> None:
    assert issubclass(ArchiveError, IngestError)


def test_destination_must_be_empty(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", {"x.txt": b"x"})
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    with pytest.raises(ArchiveError, match="not empty"):
        extract_archive(archive, dest)
    assert all_files(dest) == {"keep.txt"}
    with pytest.raises(ArchiveError, match="not a folder"):
        extract_archive(archive, dest / "keep.txt")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not found"):
        extract_archive(tmp_path / "nope.zip", tmp_path / "out")


# --- is_archive -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.zip", True),
        ("A.ZIP", True),
        ("repo.tar", True),
        ("repo.tar.gz", True),
        ("repo.TGZ", True),
        ("repo.tar.bz2", True),
        ("repo.tbz2", True),
        ("repo.tar.xz", True),
        ("repo.Tar.Xz", True),
        ("repo.txz", True),
        ("notes.txt", False),
        ("data.gz", False),
        ("archive.zip.txt", False),
        ("zip", False),
        ("tar.gz", False),
        ("module.py", False),
    ],
)
def test_is_archive(name: str, expected: bool) -> None:
    assert is_archive(Path(name)) is expected


def test_is_archive_ignores_folders(tmp_path: Path) -> None:
    (tmp_path / "looks.zip").mkdir()
    assert is_archive(tmp_path / "looks.zip") is False


# --- one name, one report row -----------------------------------------------------------------


def _tar_link(tf: tarfile.TarFile, name: str, target: str = "/etc/passwd") -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tf.addfile(info)


def _tar_fifo(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    tf.addfile(info)


def test_members_of_one_name_are_reported_once(tmp_path: Path) -> None:
    """Two refused links of one name, and a file then a FIFO of one name, were two report rows
    each: the ingest died on the database's uniqueness rule. The first member of a name wins;
    the later one is listed as a duplicate."""
    archive = tmp_path / "dup.tar"
    with tarfile.open(archive, "w") as tf:
        _tar_link(tf, "evil")
        _tar_link(tf, "./evil", "/etc/shadow")
        add_tar_file(tf, "pipe", b"data")
        _tar_fifo(tf, "pipe")
        add_tar_file(tf, "ok.txt", b"ok")
    result = extract_archive(archive, tmp_path / "out")
    assert result.refused == [("evil", "symbolic link (not followed)")]
    assert result.duplicates == ["./evil", "pipe"]
    assert read_tree(tmp_path / "out") == {"pipe": b"data", "ok.txt": b"ok"}


def test_a_later_file_of_one_name_does_not_replace_the_first(tmp_path: Path) -> None:
    archive = tmp_path / "dup.tar"
    with tarfile.open(archive, "w") as tf:
        add_tar_file(tf, "a/x.txt", b"first")
        add_tar_file(tf, "a//x.txt", b"second")
        _tar_fifo(tf, "b")
        add_tar_file(tf, "b", b"file after a fifo")
        _tar_link(tf, "/abs")
        _tar_link(tf, "/abs")
    result = extract_archive(archive, tmp_path / "out")
    assert read_tree(tmp_path / "out") == {"a/x.txt": b"first"}
    assert [name for name, _ in result.refused] == ["b", "/abs"]
    assert result.duplicates == ["a//x.txt", "b", "/abs"]


def test_zip_members_of_one_name_are_reported_once(tmp_path: Path) -> None:
    archive = tmp_path / "dup.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name": what is tested here
        for target in ("/etc/passwd", "/etc/shadow"):
            info = zipfile.ZipInfo("link")
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        zf.writestr("same.txt", b"one")
        zf.writestr("same.txt", b"two")
    result = extract_archive(archive, tmp_path / "out")
    assert result.refused == [("link", "symbolic link (not followed)")]
    assert result.duplicates == ["link", "same.txt"]
    assert read_tree(tmp_path / "out") == {"same.txt": b"one"}


def test_repeated_folder_entries_are_not_duplicates(tmp_path: Path) -> None:
    archive = tmp_path / "dirs.tar"
    with tarfile.open(archive, "w") as tf:
        for name in ("d", "./d/", "d"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        add_tar_file(tf, "d/f.txt", b"f")
    result = extract_archive(archive, tmp_path / "out")
    assert result.refused == [] and result.duplicates == []
    assert read_tree(tmp_path / "out") == {"d/f.txt": b"f"}
