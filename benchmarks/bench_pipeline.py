"""Whole-pipeline figures on the local stack, and handler cold-start cost.

* AWS API calls made by the handlers per installed pack (deterministic counts, by service and
  operation) for a pack with no environment to build, installed fresh and then again, and for a
  pack of 3,581 actions installed fresh, with the budget (12 + 1 per 25 components registered):
  the benchmark fails when an install misses it.
* State transitions of the execution.
* The largest state payload (input or output, bytes) for 10, 50 and 150 packs installed together:
  stage reports keep it to a few hundred bytes per pack, far from Step Functions' 256 KiB.
* Importing each handler module, against importing boto3 alone (median of 7 fresh interpreters),
  with its budget (1.5x): the benchmark fails when a handler misses it.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = sorted(p.parent.relative_to(ROOT / "functions") for p in (ROOT / "functions").glob("*/*/app.py"))


def _count_calls(counter: Counter[str]) -> None:
    from attune_packs.adapters.clients import client

    def count(model: Any, **_: Any) -> None:
        counter[f"{model.service_model.service_name}:{model.name}"] += 1

    for service in ("s3", "dynamodb", "codebuild", "stepfunctions", "lambda"):
        client(service).meta.events.register("before-call", count)


def _backend(stack: Any) -> Any:
    from attune_cli.backends import Backend
    from attune_packs.adapters.dynamodb import DynamoPackTable

    table = DynamoPackTable(stack.client("dynamodb"), stack.table)
    return Backend(
        stack.client("stepfunctions"), table, stack.state_machine_arn, s3=stack.client("s3"), bucket=stack.bucket
    )


CALLS_FIXED = 12  # issue 13: AWS calls per installed pack (no environment build) <= 12 + 1 per 25 components
CALLS_PER_COMPONENTS = 25


def calls_budget(components: int) -> int:
    return CALLS_FIXED + -(-components // CALLS_PER_COMPONENTS)


WIDE_ACTIONS = 3581  # issue 13's large pack (StackStorm's aws pack)


def install_counts() -> bool:
    """Install ``core_utils`` fresh, then again unchanged, then a pack of 3,581 actions fresh; print
    the handlers' AWS calls with the budget (counted from the components each install registered).
    False when a budget is missed."""
    from attune_cli.local_stack import LocalStack
    from attune_packs.models import InstallRequest
    from benchmarks.bench_register import pack_archive

    index = str(ROOT / "examples" / "index.json")
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as state, LocalStack(Path(state) / "state") as stack:
        backend = _backend(stack)
        wide = Path(state) / "wide-1.0.0.tar.gz"
        wide.write_bytes(pack_archive("1.0.0", WIDE_ACTIONS, ref="wide"))
        installs = [
            ("fresh install", InstallRequest(packs=["core_utils"], registry_url=index)),
            ("same install again", InstallRequest(packs=["core_utils"], registry_url=index)),
            (f"fresh install, {WIDE_ACTIONS:,} actions", InstallRequest(packs=[str(wide)])),
        ]
        for label, request in installs:
            counter: Counter[str] = Counter()
            _count_calls(counter)
            started = time.perf_counter()
            result = backend.follow(backend.start_install(request).arn, lambda _e: None, poll_seconds=0.1)
            elapsed = time.perf_counter() - started
            transitions = sum(1 for e in result.events if e["type"].endswith("StateEntered"))
            registered = (result.output or {}).get("register", {}).get("registered_packs", [])
            components = sum(sum(p["components_registered"].values()) for p in registered)
            calls, budget = sum(counter.values()), calls_budget(components)
            verdict = "ok" if result.status == "SUCCEEDED" and len(registered) == 1 and calls <= budget else "MISSED"
            print(
                f"  {label}: {result.status} in {elapsed:.2f}s, {calls} AWS calls by the handlers for "
                f"{len(registered)} pack of {components} components (budget {CALLS_FIXED} + ceil({components} / "
                f"{CALLS_PER_COMPONENTS}) = {budget}: {verdict}), {transitions} state transitions"
            )
            for name, count in sorted(counter.items()):
                print(f"      {name:<36} {count}")
            if verdict != "ok":
                missed.append(f"{label}: {calls} calls > {budget} ({result.status})")
            from attune_packs import wiring

            wiring.reset()
    if missed:
        print(f"  BUDGET MISSED: {'; '.join(missed)}")
    return not missed


def _pack_archive(folder: Path, ref: str) -> str:
    from testkit.pack_archives import pack_files, write_pack

    return str(write_pack(folder, ref, files=pack_files(ref, description="payload benchmark pack")))


def payload_sizes(counts: tuple[int, ...] = (10, 50, 150)) -> None:
    from attune_cli.local_stack import LocalStack
    from attune_packs.models import InstallRequest

    limit = 256 * 1024
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp) / "state") as stack:
            backend = _backend(stack)
            archives = [_pack_archive(Path(tmp), f"bench_{n:03d}") for n in range(count)]
            started = time.perf_counter()
            result = backend.follow(backend.start_install(InstallRequest(packs=archives)).arn, lambda _e: None)
            elapsed = time.perf_counter() - started
            sizes = [
                (len(details[field]), details.get("name", event["type"]), field)
                for event in result.events
                for details in event.values()
                if isinstance(details, dict)
                for field in ("input", "output")
                if isinstance(details.get(field), str)
            ]
            largest, state, field = max(sizes)
            registered = len((result.output or {}).get("register", {}).get("registered_packs", []))
            print(
                f"  {count:>3} packs: {result.status}, {registered} registered in {elapsed:.1f}s; largest payload "
                f"{largest:,} bytes ({state} {field}) = {largest / count:.0f} bytes/pack, "
                f"{largest / limit:.1%} of 256 KiB"
            )
            from attune_packs import wiring

            wiring.reset()


def cold_starts() -> bool:
    """Handler import cost against ``import boto3``, with the budget (see :mod:`benchmarks.cold_start`)."""
    from benchmarks.cold_start import report

    return report()


def main() -> None:
    print("AWS calls per install (local stack):")
    calls_ok = install_counts()
    print("State payloads (largest state input or output of the execution):")
    payload_sizes()
    print("Handler import cost (cold start), boto3 included:")
    if not cold_starts():
        raise SystemExit("cold start budget missed (see above)")
    if not calls_ok:
        raise SystemExit("AWS calls per install: budget missed (see above)")


if __name__ == "__main__":
    main()
