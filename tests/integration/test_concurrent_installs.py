"""Installs of one pack started at the same moment end as they would on AWS.

DynamoDB applies each transaction atomically and in one order, so of registrations racing for
the same pointer each either flips it (its revision check held) or is told ``CONFLICT`` and leaves
nothing behind; the revision counts the flips, none is lost.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from attune_cli.backends import ExecutionResult
from attune_packs.models import InstallRequest
from testkit.pack_archives import write_pack

pytestmark = pytest.mark.slow


def install_at_once(harness: Any, archives: list[Path]) -> list[ExecutionResult]:
    """Starts one installation per archive from threads released together, then follows each."""
    barrier = threading.Barrier(len(archives))
    results: list[Any] = [None] * len(archives)

    def run(index: int, archive: Path) -> None:
        request = InstallRequest(packs=[str(archive)], skip_env_build=True, force=True)
        barrier.wait()
        execution = harness.backend.start_install(request)
        results[index] = harness.backend.follow(execution.arn, lambda _e: None, poll_seconds=0.2, timeout=600)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(archives)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    return results


def pack_outcome(result: ExecutionResult, ref: str) -> tuple[str, str | None]:
    """("registered", previous version) or ("failed", error code) for ``ref`` in one installation."""
    output = (result.output or {}).get("register") or {}
    for registered in output.get("registered_packs") or []:
        if registered.get("pack_ref") == ref:
            return "registered", registered.get("previous_version")
    for failed in output.get("failed_packs") or []:
        if failed.get("pack_ref") in (ref, None):
            return "failed", failed.get("error_code")
    return "missing", f"{result.status} {result.error} {result.cause} {result.output}"


def test_installs_of_one_pack_at_the_same_moment_end_as_on_aws(harness: Any, tmp_path: Path) -> None:
    # Given racer 1.0.0 installed (revision 1)
    first = harness.install(str(write_pack(tmp_path, "racer", "1.0.0")), skip_env_build=True)
    assert pack_outcome(first, "racer") == ("registered", None), first
    flips = 1
    for major in ("2", "3"):  # two rounds: a race that loses an update only sometimes is seen more often
        # When five installs of other versions start at the same moment
        versions = [f"{major}.{minor}.0" for minor in range(5)]
        archives = []
        for version in versions:
            folder = tmp_path / version
            folder.mkdir()
            archives.append(write_pack(folder, "racer", version))
        outcomes = [pack_outcome(r, "racer") for r in install_at_once(harness, archives)]

        # Then each either registered or failed with CONFLICT
        assert all(kind == "registered" or detail == "CONFLICT" for kind, detail in outcomes), outcomes
        winners = [version for version, (kind, _) in zip(versions, outcomes, strict=True) if kind == "registered"]
        assert winners, outcomes
        flips += len(winners)
        assert_registry_consistent(harness, winners, flips, outcomes)


def assert_registry_consistent(harness: Any, winners: list[str], flips: int, outcomes: list[Any]) -> None:
    # No update was lost: each flip replaced a different version, the revision counts them all
    previous = [detail for kind, detail in outcomes if kind == "registered"]
    assert len(set(previous)) == len(previous), outcomes
    items = harness.table.query_prefix("PACK#racer", "")
    by_sk = {item["SK"]: item for item in items}
    current = by_sk["CURRENT"]
    assert int(current["revision"]) == flips, outcomes
    assert current["version"] in winners

    # CURRENT names a version whose items all exist
    assert f"VERSION#{current['version']}" in by_sk
    own = [i for i in items if i.get("entity") == "component" and i["registration_id"] == current["registration_id"]]
    assert sorted(i["name"] for i in own) == ["hello"]  # the one action of testkit.pack_archives.pack_files

    # No component belongs to a registration nothing points at, and nothing stays staged
    referenced = {entry["registration_id"] for entry in current["retained"]} | {current["registration_id"]}
    orphans = [i["SK"] for i in items if i.get("entity") == "component" and i["registration_id"] not in referenced]
    assert orphans == []
    assert [i["SK"] for i in items if i.get("entity") == "staged_registration"] == []
