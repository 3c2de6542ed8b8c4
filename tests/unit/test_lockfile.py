"""The lockfile format: parsing, stable writing, compiled requirements, and what counts as drift."""

from __future__ import annotations

import json
from typing import Any

import pytest

from attune_packs.domain.lockfile import (
    Lockfile,
    dump_lockfile,
    lock_drift,
    parse_compiled_requirements,
    parse_lockfile,
    pin_drift,
)
from attune_packs.errors import InvalidRequestError
from attune_packs.models import LockPin

SUM_A, SUM_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
COMMIT = "c" * 40


def document(**pack: Any) -> dict[str, Any]:
    base = {
        "pack_ref": "demo",
        "pack_version": "1.0.0",
        "source": "demo@=1.0.0",
        "source_type": "registry",
        "checksum": SUM_A,
        "requested": True,
        "environments": {
            "python": {
                "python_version": "3.12",
                "platform": "aarch64-manylinux_2_28",
                "requirements": [{"name": "six", "version": "1.17.0", "hashes": [SUM_A]}],
            }
        },
    }
    return {"lockfile_version": 1, "packs": [{**base, **pack}]}


def test_a_lockfile_round_trips_to_the_same_bytes() -> None:
    lock = parse_lockfile(json.dumps(document(git_commit=COMMIT)))
    text = dump_lockfile(lock)
    assert dump_lockfile(parse_lockfile(text)) == text
    assert lock.requested_sources() == ["demo@=1.0.0"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "LOCKFILE_INVALID"),
        ("[]", "LOCKFILE_INVALID"),
        (json.dumps({**document(), "lockfile_version": 2}), "LOCKFILE_VERSION_UNSUPPORTED"),
        (json.dumps(document(checksum="md5:x")), "LOCKFILE_INVALID"),
        (json.dumps(document(surprise=True)), "LOCKFILE_INVALID"),
        (json.dumps({"lockfile_version": 1, "packs": []}), "LOCKFILE_INVALID"),
    ],
)
def test_malformed_lockfiles_are_refused_with_a_reason(text: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_lockfile(text)
    assert refused.value.error_code == code


def test_compiled_requirements_give_exact_pins_with_their_hashes() -> None:
    compiled = (
        "certifi==2024.8.30 \\\n    --hash=sha256:" + "1" * 64 + " \\\n    --hash=sha256:" + "2" * 64 + "\n"
        "# via requests\nRequests==2.32.3 \\\n    --hash=sha256:" + "3" * 64 + "\n"
    )
    pins = parse_compiled_requirements(compiled)
    assert [(p.name, p.version, len(p.hashes)) for p in pins] == [
        ("certifi", "2024.8.30", 2),
        ("requests", "2.32.3", 1),
    ]


def test_nothing_moved_is_no_drift() -> None:
    lock = Lockfile.model_validate(document())
    assert lock_drift(lock, Lockfile.model_validate(document())) == []


@pytest.mark.parametrize(
    ("now", "field"),
    [
        ({"checksum": SUM_B}, "checksum"),  # a changed archive
        ({"git_commit": COMMIT}, "git_commit"),  # a moved tag
        ({"pack_version": "1.0.1"}, "pack_version"),
        ({"pack_ref": "other"}, "pack"),
    ],
)
def test_each_moved_pack_field_is_named(now: dict[str, Any], field: str) -> None:
    drift = lock_drift(Lockfile.model_validate(document()), Lockfile.model_validate(document(**now)))
    assert field in [d.field for d in drift]


def test_a_requirement_resolving_differently_or_served_with_other_files_is_drift() -> None:
    lock = Lockfile.model_validate(document())
    other_version = document()
    other_version["packs"][0]["environments"]["python"]["requirements"][0]["version"] = "1.16.0"
    other_files = document()
    other_files["packs"][0]["environments"]["python"]["requirements"][0]["hashes"] = [SUM_B]
    assert [d.field for d in lock_drift(lock, Lockfile.model_validate(other_version))] == ["python requirement six"]
    assert [d.field for d in lock_drift(lock, Lockfile.model_validate(other_files))] == [
        "python requirement six==1.17.0 hashes"
    ]


def test_node_packages_are_compared_by_their_lockfile_integrity() -> None:
    def with_node(integrity: str) -> Lockfile:
        doc = document()
        doc["packs"][0]["environments"]["nodejs"] = {
            "nodejs_version": "20",
            "lockfile": "package-lock.json",
            "packages": {"node_modules/left-pad": {"version": "1.3.0", "integrity": integrity}},
        }
        return Lockfile.model_validate(doc)

    assert lock_drift(with_node("sha512-a"), with_node("sha512-a")) == []
    [drift] = lock_drift(with_node("sha512-a"), with_node("sha512-b"))
    assert drift.field == "nodejs package node_modules/left-pad"


def test_pins_refuse_other_content_and_unpinned_packs() -> None:
    pins = {"demo": LockPin(pack_version="1.0.0", checksum=SUM_A, git_commit=COMMIT)}
    assert pin_drift("demo", "1.0.0", SUM_A, COMMIT, pins) == []
    assert [d.field for d in pin_drift("demo", "1.0.0", SUM_B, "d" * 40, pins)] == ["checksum", "git_commit"]
    assert [d.field for d in pin_drift("extra", "1.0.0", SUM_A, None, pins)] == ["pack"]
