"""attune_packs.sources.git without a network: refs and URLs, ref selection, hostile packs, and the
commit -> tar.gz conversion (packs are built in memory with dulwich, or by hand when hostile)."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import zlib
from typing import Any

import pytest
from dulwich.object_format import SHA1
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Blob, Commit, Tag, Tree
from dulwich.pack import write_pack_objects

from attune_packs.domain.archive import ArchiveLimits, scan_archive
from attune_packs.errors import AttuneError
from attune_packs.sources.git import (
    GitLimits,
    WantedObject,
    archive_from_pack,
    check_git_url,
    check_pack,
    check_ref,
    select_ref,
    split_git_source,
)

URL = "https://git.example/org/pack.git"
PACK_YAML = b'ref: demo\nversion: "1.0.0"\ndescription: demo\n'


def failure(call: Any) -> AttuneError:
    with pytest.raises(AttuneError) as caught:
        call()
    return caught.value


# --- refs and URLs (before any network) ---------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["v1.2.0", "1.2.0", "main", "feature/new-thing", "refs/tags/v1.0.0", "a" * 40, "release-2024.01", "x@y"]
)
def test_ordinary_refs_are_accepted(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "-oProxyCommand=touch /tmp/pwned",
        "--upload-pack=touch /tmp/pwned",
        "-",
        "main..evil",
        "../../etc",
        "HEAD@{1}",
        "@",
        "v1\nrm -rf /",
        "v1\x00",
        "v1\x1b[31m",
        "v1\x7f",
        "tab\there",
        "with space",
        "x~1",
        "x^2",
        "a:b",
        "*",
        "[x",
        "x\\y",
        "/abs",
        "trailing/",
        "a//b",
        ".hidden",
        "dir/.hidden",
        "x.lock",
        "ends.",
        "r" * 300,
    ],
)
def test_option_like_or_malformed_refs_are_ref_invalid(ref: str) -> None:
    assert failure(lambda: check_ref(ref)).error_code == "REF_INVALID"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ext::sh -c touch% /tmp/pwned", "remote helpers"),
        ("ext::sh", "remote helpers"),
        ("fd::17", "remote helpers"),
        ("file:///srv/git/pack.git", "file://"),
        ("ssh://-oProxyCommand=touch%20x/repo", "ssh://"),
        ("ssh://git@github.com/org/repo.git", "ssh://"),
        ("git+ssh://github.com/org/repo.git", "ssh://"),
        ("git://github.com/org/repo.git", "git://"),
        ("git@github.com:org/repo.git", "scp-style"),
        ("github.com:org/repo.git", "scp-style"),
        ("-uhttps://github.com/org/repo.git", "starts with '-'"),
        ("https://github.com/org/../../repo.git", "'..'"),
        ("https://user:token@github.com/org/repo.git", "credentials"),
        ("https://github.com/org/repo.git\n--upload-pack=x", "control"),
        ("https://github.com/org/repo.git?service=x", "query"),
        ("http://github.com/org/repo.git", "plain http"),
        ("ftp://github.com/org/repo.git", "ftp://"),
    ],
)
def test_non_https_transports_and_odd_urls_are_forbidden(url: str, reason: str) -> None:
    error = failure(lambda: check_git_url(url, allow_http=False))
    assert error.error_code == "SOURCE_URL_FORBIDDEN" and reason in error.message


def test_https_urls_pass_and_http_only_where_allowed() -> None:
    assert check_git_url("https://github.com/StackStorm-Exchange/stackstorm-aws", allow_http=False).host == (
        "github.com"
    )
    assert check_git_url("http://127.0.0.1:8080/repo.git", allow_http=True).port == 8080


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("https://github.com/org/repo.git", ("https://github.com/org/repo.git", None)),
        ("https://github.com/org/repo.git@v1.2.0", ("https://github.com/org/repo.git", "v1.2.0")),
        ("https://github.com/org/repo@feature/x", ("https://github.com/org/repo", "feature/x")),
        ("https://github.com/org/repo.git@", ("https://github.com/org/repo.git", "")),
        ("https://user@github.com/org/repo.git", ("https://user@github.com/org/repo.git", None)),
    ],
)
def test_a_ref_after_at_is_split_off(source: str, expected: tuple[str, str | None]) -> None:
    assert split_git_source(source) == expected


# --- choosing the object to fetch ---------------------------------------------------------------

C1, C2, T1 = b"1" * 40, b"2" * 40, b"3" * 40
REFS = {
    b"HEAD": C2,
    b"refs/heads/main": C2,
    b"refs/heads/v2.0.0": C1,  # a branch named like a tag: the tag wins, as in git rev-parse
    b"refs/tags/v2.0.0": T1,
    b"refs/tags/v1.0.0": C1,
}


@pytest.mark.parametrize(
    ("ref", "sha", "name"),
    [
        (None, C2, "HEAD"),
        ("HEAD", C2, "HEAD"),
        ("main", C2, "refs/heads/main"),
        ("v2.0.0", T1, "refs/tags/v2.0.0"),
        ("1.0.0", C1, "refs/tags/v1.0.0"),  # StackStorm Exchange style version tags
        ("refs/heads/v2.0.0", C1, "refs/heads/v2.0.0"),
    ],
)
def test_refs_resolve_to_tags_then_branches(ref: str | None, sha: bytes, name: str) -> None:
    assert select_ref(REFS, ref) == WantedObject(sha, name, True)


def test_full_commit_ids_are_wanted_directly_and_marked_unadvertised_when_not_a_tip() -> None:
    assert select_ref(REFS, C1.decode()).advertised is True
    unknown = select_ref(REFS, "ABCDEF" + "0" * 34)
    assert unknown == WantedObject(b"abcdef" + b"0" * 34, "abcdef" + "0" * 34, False)


def test_unknown_and_abbreviated_refs_say_what_to_do() -> None:
    missing = failure(lambda: select_ref(REFS, "v9.9.9", url=URL))
    assert missing.error_code == "GIT_REF_NOT_FOUND" and "v1.0.0, v2.0.0" in missing.message
    short = failure(lambda: select_ref(REFS, "abc1234"))
    assert short.error_code == "GIT_REF_NOT_FOUND" and "40 hex digits" in short.message
    no_head = failure(lambda: select_ref({b"refs/heads/main": C1}, None))
    assert no_head.error_code == "GIT_REF_NOT_FOUND" and "default branch" in no_head.message


# --- building repositories and packs in memory --------------------------------------------------


class Repo:
    def __init__(self) -> None:
        self.store = MemoryObjectStore()

    def blob(self, data: bytes) -> Blob:
        obj = Blob.from_string(data)
        self.store.add_object(obj)
        return obj

    def tree(self, entries: dict[str, Any]) -> Tree:
        tree = Tree()
        for name, value in entries.items():
            raw = name.encode("utf-8", "surrogateescape")
            if isinstance(value, dict):
                tree.add(raw, 0o040000, self.tree(value).id)
            elif isinstance(value, tuple):  # (mode, data or sha)
                mode, payload = value
                sha = payload if mode == 0o160000 else self.blob(payload).id
                tree.add(raw, mode, sha)
            else:
                tree.add(raw, 0o100644, self.blob(value).id)
        self.store.add_object(tree)
        return tree

    def commit(self, files: dict[str, Any], *, when: int = 1_700_000_000, message: bytes = b"c") -> Commit:
        commit = Commit()
        commit.tree = self.tree(files).id
        commit.author = commit.committer = b"Dev <dev@example.com>"
        commit.author_time = commit.commit_time = when
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message
        self.store.add_object(commit)
        return commit

    def tag(self, target: Any, name: bytes = b"v1.0.0") -> Tag:
        tag = Tag()
        tag.object = (type(target), target.id)
        tag.name = name
        tag.tagger = b"Dev <dev@example.com>"
        tag.tag_time = 1_700_000_000
        tag.tag_timezone = 0
        tag.message = b"release"
        self.store.add_object(tag)
        return tag

    def pack(self, *, deltify: bool = False, leave_out: bytes | None = None) -> bytes:
        out = io.BytesIO()
        objects = [(self.store[sha], None) for sha in sorted(self.store) if sha != leave_out]
        write_pack_objects(out.write, objects, SHA1, deltify=deltify)
        return out.getvalue()


def convert(
    pack: bytes, wanted: bytes, *, limits: GitLimits = GitLimits(), name: str = "HEAD"
) -> tuple[bytes, list[str], str]:
    with archive_from_pack(io.BytesIO(pack), WantedObject(wanted, name, True), SHA1, url=URL, limits=limits) as got:
        return got.stream.read(), got.warnings, got.commit


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_commit_becomes_a_deterministic_tar_gz_carrying_its_id() -> None:
    repo = Repo()
    commit = repo.commit(
        {"pack.yaml": PACK_YAML, "actions": {"run.sh": (0o100755, b"#!/bin/sh\n"), "run.yaml": b"name: run\n"}}
    )
    first, warnings, commit_id = convert(repo.pack(), commit.id)
    second, _, _ = convert(repo.pack(), commit.id)
    assert first == second and commit_id == commit.id.decode() and warnings == []
    assert first[4:8] == b"\0\0\0\0", "no timestamp in the gzip header"
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        assert tar.pax_headers["comment"] == commit.id.decode()
        infos = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("pack.yaml").read() == PACK_YAML  # type: ignore[union-attr]
    assert list(infos) == ["actions", "actions/run.sh", "actions/run.yaml", "pack.yaml"]
    assert infos["actions/run.sh"].mode == 0o755 and infos["actions/run.yaml"].mode == 0o644
    assert {(i.mtime, i.uid, i.gid, i.uname) for i in infos.values()} == {(1_700_000_000, 0, 0, "")}
    later = repo.commit({"pack.yaml": PACK_YAML}, when=1_700_000_001)
    assert convert(repo.pack(), later.id)[0] != first


@pytest.mark.parametrize(
    ("files", "root"),
    [
        ({"pack.yaml": PACK_YAML, "README.md": b"hi"}, ""),
        ({"demo": {"pack.yaml": PACK_YAML}, "README.md": b"hi"}, "demo/"),
        ({"pack": {"pack.yaml": PACK_YAML}, "docs": {"index.md": b"x"}, "README.md": b"hi"}, "pack/"),
    ],
)
def test_the_pack_may_sit_at_the_root_in_one_folder_or_in_pack(files: dict[str, Any], root: str) -> None:
    repo = Repo()
    commit = repo.commit(files)
    data, _, _ = convert(repo.pack(), commit.id)
    archive = scan_archive(io.BytesIO(data))
    assert archive.root == root and archive.files["pack.yaml"] == PACK_YAML


def test_an_annotated_tag_is_peeled_to_its_commit_and_deltas_resolve() -> None:
    repo = Repo()
    base = os.urandom(20_000)
    commit = repo.commit({"pack.yaml": PACK_YAML, "a.bin": base, "b.bin": base[:19_000] + b"changed"})
    tag = repo.tag(commit)
    pack = repo.pack(deltify=True)
    data, _, commit_id = convert(pack, tag.id, name="refs/tags/v1.0.0")
    assert commit_id == commit.id.decode()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert tar.extractfile("b.bin").read() == base[:19_000] + b"changed"  # type: ignore[union-attr]


def test_a_tag_that_names_a_tree_is_not_a_commit() -> None:
    repo = Repo()
    tree = repo.tree({"pack.yaml": PACK_YAML})
    tag = repo.tag(tree)
    assert failure(lambda: convert(repo.pack(), tag.id)).error_code == "GIT_REF_NOT_FOUND"


def test_symlinks_reach_the_scanner_as_links_and_are_refused() -> None:
    repo = Repo()
    commit = repo.commit({"pack.yaml": PACK_YAML, "secret": (0o120000, b"/etc/passwd")})
    data, _, _ = convert(repo.pack(), commit.id)
    assert members(data)["secret"].issym()
    assert failure(lambda: scan_archive(io.BytesIO(data))).error_code == "ARCHIVE_LINK_FORBIDDEN"


def test_submodules_are_not_fetched_and_say_so() -> None:
    repo = Repo()
    commit = repo.commit({"pack.yaml": PACK_YAML, "vendor": (0o160000, b"4" * 40)})
    data, warnings, _ = convert(repo.pack(), commit.id)
    assert "vendor" not in members(data)
    assert warnings == ["submodule 'vendor' was not fetched (submodules are not supported)"]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("..", "ARCHIVE_UNSAFE_PATH"),
        ("a/b", "ARCHIVE_UNSAFE_PATH"),
        (".git", "ARCHIVE_UNSAFE_PATH"),
        (".GIT", "ARCHIVE_UNSAFE_PATH"),
        ("bad\udcff", "ARCHIVE_BAD_FILENAME"),  # not UTF-8 in the tree
    ],
)
def test_impossible_tree_entries_are_refused(name: str, code: str) -> None:
    repo = Repo()
    commit = repo.commit({"pack.yaml": PACK_YAML, name: b"x"})
    assert failure(lambda: convert(repo.pack(), commit.id)).error_code == code


def test_tree_depth_and_entry_counts_are_limited() -> None:
    repo = Repo()
    deep: dict[str, Any] = {"leaf": b"x"}
    for level in range(40):
        deep = {f"d{level}": deep}
    commit = repo.commit({"pack.yaml": PACK_YAML, **deep})
    assert failure(lambda: convert(repo.pack(), commit.id)).error_code == "ARCHIVE_UNSAFE_PATH"

    repo = Repo()
    commit = repo.commit({"pack.yaml": PACK_YAML, **{f"f{i}": b"%d" % i for i in range(30)}})
    error = failure(lambda: convert(repo.pack(), commit.id, limits=GitLimits(max_files=20)))
    assert error.error_code == "ARCHIVE_TOO_MANY_FILES"


def test_a_big_file_streams_in_chunks() -> None:
    repo = Repo()
    big = os.urandom(5 * 2**20)
    commit = repo.commit({"pack.yaml": PACK_YAML, "big.bin": big})
    with archive_from_pack(
        io.BytesIO(repo.pack()), WantedObject(commit.id, "HEAD", True), SHA1, url=URL, limits=GitLimits()
    ) as got:
        sizes = []
        while chunk := got.stream.read(256 * 1024):
            sizes.append(len(chunk))
    assert len(sizes) > 10 and max(sizes) <= 256 * 1024
    archive = scan_archive(io.BytesIO(convert(repo.pack(), commit.id)[0]), limits=ArchiveLimits())
    assert "big.bin" in archive.file_list


def test_a_pack_missing_the_commits_files_is_a_fetch_failure() -> None:
    repo = Repo()
    blob = repo.blob(b"contents")
    commit = repo.commit({"pack.yaml": PACK_YAML, "x": b"contents"})
    error = failure(lambda: convert(repo.pack(leave_out=blob.id), commit.id))
    assert error.error_code == "GIT_FETCH_FAILED" and "missing" in error.message


# --- hostile packs: refused before anything is inflated in memory -----------------------------------


def object_header(kind: int, size: int) -> bytes:
    first = (kind << 4) | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    out.append(first)
    return bytes(out)


def delta_size(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def raw_pack(*entries: bytes, count: int | None = None) -> bytes:
    body = b"PACK" + struct.pack(">II", 2, len(entries) if count is None else count) + b"".join(entries)
    return body + hashlib.sha1(body).digest()


def blob_entry(data: bytes, *, declared: int | None = None) -> bytes:
    return object_header(3, len(data) if declared is None else declared) + zlib.compress(data)


def check(pack: bytes, limits: GitLimits = GitLimits()) -> int:
    return check_pack(io.BytesIO(pack), limits)


def test_a_well_formed_pack_passes_the_check() -> None:
    repo = Repo()
    repo.commit({"pack.yaml": PACK_YAML, "a": os.urandom(3000), "b": b"z" * 5000})
    assert check(repo.pack(deltify=True)) == len(list(repo.store))


def test_a_zlib_bomb_is_refused_on_its_declared_size() -> None:
    bomb = object_header(3, 4 * 2**30) + zlib.compress(b"\0" * 2**20)  # claims 4 GiB
    assert failure(lambda: check(raw_pack(bomb))).error_code == "ARCHIVE_FILE_TOO_LARGE"


def test_an_object_inflating_beyond_its_header_is_refused_while_inflating() -> None:
    liar = blob_entry(b"a" * 100_000, declared=10)
    error = failure(lambda: check(raw_pack(liar)))
    assert error.error_code == "GIT_FETCH_FAILED" and "more than its header declares" in error.message
    short = blob_entry(b"a" * 10, declared=100)
    assert failure(lambda: check(raw_pack(short))).error_code == "GIT_FETCH_FAILED"


def test_a_delta_bomb_is_refused_on_the_size_it_would_produce() -> None:
    base = blob_entry(b"x" * 64)
    instructions = delta_size(64) + delta_size(3 * 2**30) + bytes([0x90, 0x40]) * 1000  # copy 64 bytes, many times
    delta = object_header(6, len(instructions)) + bytes([len(base)]) + zlib.compress(instructions)
    assert failure(lambda: check(raw_pack(base, delta))).error_code == "ARCHIVE_FILE_TOO_LARGE"
    ref_delta = object_header(7, len(instructions)) + b"\x11" * 20 + zlib.compress(instructions)
    assert failure(lambda: check(raw_pack(base, ref_delta))).error_code == "ARCHIVE_FILE_TOO_LARGE"


def test_objects_together_over_the_total_are_refused() -> None:
    entries = [blob_entry(os.urandom(600)) for _ in range(3)]
    error = failure(lambda: check(raw_pack(*entries), GitLimits(max_total_bytes=1500)))
    assert error.error_code == "ARCHIVE_TOO_LARGE"


def test_an_object_count_over_the_limit_is_refused_from_the_header() -> None:
    assert failure(lambda: check(raw_pack(count=10**7))).error_code == "ARCHIVE_TOO_MANY_FILES"


@pytest.mark.parametrize(
    "pack",
    [
        b"<html>not a pack</html>" + b"\0" * 20,
        b"PACK" + struct.pack(">II", 9, 0) + b"\0" * 20,  # unknown version
        raw_pack(blob_entry(b"hello"))[:-30],  # truncated
        raw_pack(blob_entry(b"hello")) + b"trailing",
        raw_pack(object_header(5, 3) + zlib.compress(b"abc")),  # object type 5 does not exist
        raw_pack(object_header(3, 5) + b"\x78\x9c garbage that is not deflate"),
    ],
)
def test_damaged_packs_are_fetch_failures(pack: bytes) -> None:
    assert failure(lambda: check(pack)).error_code == "GIT_FETCH_FAILED"


def test_a_pack_whose_checksum_is_wrong_is_refused_by_the_loader() -> None:
    repo = Repo()
    commit = repo.commit({"pack.yaml": PACK_YAML})
    pack = bytearray(repo.pack())
    pack[-1] ^= 0xFF
    assert failure(lambda: convert(bytes(pack), commit.id)).error_code == "GIT_FETCH_FAILED"
