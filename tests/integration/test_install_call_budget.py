"""AWS calls per installed pack (issue 13): at most 12 plus one per 25 components, for a pack with no
environment to build, counted at the handlers' boto3 clients while the real state machine installs
``core_utils`` from the example index on the local stack.

The counts are deterministic, so they are pinned call by call: a change that adds a call fails
here and has to say why (and a change that saves one updates the pin).

What each call is for, fresh install:

* download: PutObject of the canonical archive (conditional, ``If-None-Match: *``), PutObject of
  its stage report (the source, a local file here, fits in memory: no staging object);
* dependencies: GetObject of the archive (verified by its digest), GetItem of the pack's pointer
  (already installed?), PutObject of its stage report;
* register: GetObject of the archive (verified again: another function), Query of the pointer and
  all that sorts under it, TransactWriteItems (the flip, carrying the components), BatchWriteItem
  of the installation record, PutObject of its stage report.

Unchanged again: the conditional PUT is refused and the archive written again (an object is never
trusted by its key); register reads, finds the same content current, and only records the
installation.

A pack whose items do not fit in the flip's transaction writes them first, 25 per BatchWriteItem
(with its STAGED marker): the "one per 25 components" of the budget.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import Harness

from attune_cli.backends import ExecutionResult
from testkit.pack_archives import tar_gz

FRESH = {
    "s3:PutObject": 4,
    "s3:GetObject": 2,
    "dynamodb:GetItem": 1,
    "dynamodb:Query": 1,
    "dynamodb:TransactWriteItems": 1,
    "dynamodb:BatchWriteItem": 1,
}
UNCHANGED = {
    "s3:PutObject": 5,
    "s3:GetObject": 2,
    "dynamodb:GetItem": 1,
    "dynamodb:Query": 1,
    "dynamodb:BatchWriteItem": 1,
}


@dataclass
class CountedInstall:
    result: ExecutionResult
    calls: Counter[str]

    @property
    def registered(self) -> list[dict[str, Any]]:
        return list((self.result.output or {}).get("register", {}).get("registered_packs", []))

    @property
    def budget(self) -> int:
        components = sum(sum(pack["components_registered"].values()) for pack in self.registered)
        return 12 + -(-components // 25)


def counted_install(harness: Harness, pack: str) -> CountedInstall:
    """Install ``pack``, counting every AWS call the handlers make (their process-wide clients)."""
    from attune_packs import wiring
    from attune_packs.adapters.clients import client

    wiring.reset()  # fresh clients, so that only this install's calls are counted
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.service_name}:{model.name}"] += 1

    for service in ("s3", "dynamodb", "codebuild", "stepfunctions", "lambda"):
        client(service).meta.events.register("before-call", count)
    try:
        result = harness.install(pack)
    finally:
        for service in ("s3", "dynamodb", "codebuild", "stepfunctions", "lambda"):
            client(service).meta.events.unregister("before-call", count)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    return CountedInstall(result, calls)


def test_a_fresh_install_and_an_unchanged_one_stay_within_the_call_budget_call_for_call(harness: Harness) -> None:
    # Given an empty local stack
    # When core_utils (6 components, no environment to build) is installed, then installed again
    fresh = counted_install(harness, "core_utils")
    again = counted_install(harness, "core_utils")

    # Then the first registered it and the second found it unchanged
    assert [(p["pack_ref"], p["status"]) for p in fresh.registered] == [("core_utils", "registered")]
    assert [(p["pack_ref"], p["status"]) for p in again.registered] == [("core_utils", "unchanged")]
    # And each made exactly these calls, within the budget of 12 + ceil(6 / 25) = 13
    assert fresh.calls == Counter(FRESH)
    assert again.calls == Counter(UNCHANGED)
    assert fresh.budget == again.budget == 13
    assert sum(fresh.calls.values()) <= fresh.budget and sum(again.calls.values()) <= again.budget


def test_a_pack_too_large_for_the_flip_stages_its_items_25_per_call_within_the_budget(
    harness: Harness, tmp_path: Path
) -> None:
    # Given a pack of 120 actions (more items than the flip's transaction may carry)
    files = {"pack.yaml": 'ref: wide\nversion: "1.0.0"\ndescription: many actions\n', "actions/run.py": ""}
    for n in range(120):
        files[f"actions/a{n:03}.yaml"] = f"name: a{n:03}\nrunner_type: python-script\nentry_point: run.py\n"
    archive = tmp_path / "wide-1.0.0.tar.gz"
    archive.write_bytes(tar_gz(files, root="wide/"))

    # When it is installed
    install = counted_install(harness, str(archive))

    # Then its 120 components, their listing and the STAGED marker took ceil(122 / 25) = 5 batches,
    # besides the installation record's; the rest is what any install costs
    assert [(p["pack_ref"], p["status"]) for p in install.registered] == [("wide", "registered")]
    assert install.calls == Counter({**FRESH, "dynamodb:BatchWriteItem": 5 + 1})
    assert sum(install.calls.values()) == 15 <= install.budget == 12 + 5
