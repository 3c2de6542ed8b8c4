"""The pack archive builder the tests and benchmarks share (testkit.pack_archives) writes what it is asked,
hostile members included, and the archive checks see exactly that."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from attune_packs.domain.archive import scan_archive
from attune_packs.errors import ArchiveError
from testkit.pack_archives import (
    device,
    directory,
    file,
    hardlink,
    manifest,
    pack_files,
    stream,
    symlink,
    tar_bytes,
    tar_gz,
    write_pack,
    write_tar_gz,
    zip_bytes,
)

MANIFEST = manifest("demo", "1.0.0")


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as tar:
        return tar.getmembers()


def test_a_written_pack_scans_as_that_pack_in_both_formats(tmp_path: Path) -> None:
    for archive_type in ("tar.gz", "zip"):
        path = write_pack(tmp_path, "demo", "2.1.0", archive_type=archive_type)
        assert path.name == f"demo-2.1.0.{archive_type}"
        with path.open("rb") as raw:
            scanned = scan_archive(raw)
        assert scanned.root == "demo/" and scanned.format == archive_type
        assert scanned.file_list == sorted(pack_files("demo", "2.1.0"))
        assert b'version: "2.1.0"' in scanned.files["pack.yaml"]


def test_archives_are_reproducible_and_keep_the_order_given() -> None:
    files = {"b.txt": "b", "a.txt": b"a", "pack.yaml": MANIFEST}
    assert tar_gz(files) == tar_gz(dict(files)) and zip_bytes(files) == zip_bytes(dict(files))
    members = tar_members(tar_gz(files, root="p/"))
    assert [m.name for m in members] == ["p/b.txt", "p/a.txt", "p/pack.yaml"]
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}


def test_pairs_keep_duplicate_names() -> None:
    data = zip_bytes([("pack/a.txt", b"1"), ("pack/a.txt", b"2")])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert [i.filename for i in archive.infolist()] == ["pack/a.txt", "pack/a.txt"]
    assert [m.name for m in tar_members(tar_bytes([("a", "1"), ("a", "2")]))] == ["a", "a"]


def test_hostile_tar_members_are_written_as_asked() -> None:
    members = tar_members(
        tar_bytes(
            {
                "pack/etc": symlink("/etc"),
                "pack/hard": hardlink("pack/pack.yaml"),
                "pack/null": device("char"),
                "pack/disk": device("block"),
                "pack/pipe": device("fifo"),
                "pack/dir": directory(),
                "pack/run.sh": file("#!/bin/sh\n", mode=0o4755, pax={"comment": "x"}),
                "../escape.txt": "x",
                "pack/\udcff.txt": b"raw name",
            },
            fmt="gnu",
        )
    )
    by_name = {m.name: m for m in members}
    assert by_name["pack/etc"].issym() and by_name["pack/etc"].linkname == "/etc"
    assert by_name["pack/hard"].islnk() and by_name["pack/hard"].linkname == "pack/pack.yaml"
    assert by_name["pack/null"].ischr() and by_name["pack/disk"].isblk() and by_name["pack/pipe"].isfifo()
    assert by_name["pack/dir"].isdir() and by_name["pack/run.sh"].mode == 0o4755
    assert "../escape.txt" in by_name and "pack/\udcff.txt" in by_name


def test_hostile_zip_entries_are_written_as_asked() -> None:
    data = zip_bytes(
        {"pack/etc": symlink("/etc"), "pack/dir": directory(), "pack/x.sh": file("x", mode=0o755), "a\udcff": "r"}
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert stat.S_ISLNK(infos["pack/etc"].external_attr >> 16) and archive.read("pack/etc") == b"/etc"
        assert infos["pack/dir/"].is_dir()
        assert infos["pack/x.sh"].external_attr >> 16 == stat.S_IFREG | 0o755
    assert b"a\xff" in data and "a\udcff".encode("utf-8", "surrogateescape") == b"a\xff", "raw bytes, not UTF-8"
    with pytest.raises(ValueError, match="tar only"):
        zip_bytes({"pack/hard": hardlink("pack/pack.yaml")})


@pytest.mark.parametrize(
    ("member", "code"),
    [
        (symlink("/etc/passwd"), "ARCHIVE_LINK_FORBIDDEN"),
        (hardlink("/etc/passwd"), "ARCHIVE_LINK_FORBIDDEN"),
        (device("char"), "ARCHIVE_SPECIAL_FILE"),
    ],
)
def test_the_archive_checks_refuse_what_the_builder_writes(member: object, code: str) -> None:
    data = tar_gz({"pack/pack.yaml": MANIFEST, "pack/evil": member})
    with pytest.raises(ArchiveError) as refused:
        scan_archive(io.BytesIO(data))
    assert refused.value.error_code == code


def test_streamed_members_go_to_disk_without_being_held(tmp_path: Path) -> None:
    size = 3 * 2**20
    blob = io.BytesIO(random.Random(7).randbytes(size))  # incompressible: not a bomb
    path = write_tar_gz(tmp_path / "big.tar.gz", [("big/pack.yaml", MANIFEST), ("big/blob.bin", stream(blob, size))])
    with path.open("rb") as raw:
        scanned = scan_archive(raw)
    assert scanned.root == "big/" and scanned.total_bytes == len(MANIFEST) + size
