"""Registering large packs: DynamoDB calls and time (moto in process, the table from template.yaml).

The target is ceil(items / 25) + a small constant per pack: a pack's items go to the table in
BatchWriteItem calls of 25, and the rest is a fixed number of calls (read the pointer, flip it in
one transaction, record the installation). Runs: a fresh pack of 1,000 actions; the same archive
again (a no-op); an upgrade to a new version of 1,000 actions; and an upgrade once retention is
full, which also deletes the oldest version's 1,000 items.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = int(os.environ.get("BENCH_ACTIONS", "1000"))
REGION = "us-east-1"


def _archive(version: str, actions: int) -> bytes:
    files = {"pack.yaml": f'ref: bench\nversion: "{version}"\ndescription: benchmark pack\n', "actions/run.py": ""}
    for i in range(actions):
        files[f"actions/a{i:04}.yaml"] = (
            f"name: a{i:04}\nrunner_type: python-script\nentry_point: run.py\n"
            "parameters:\n  message: {type: string, required: true}\n"
        )
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed, tarfile.open(fileobj=packed, mode="w") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"bench/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()  # reproducible: the same version is the same archive


def main() -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    import boto3
    from moto import mock_aws

    from attune_cli.template import StackResources
    from attune_packs.adapters.dynamodb import DynamoPackTable
    from attune_packs.adapters.s3 import S3ObjectStore
    from attune_packs.models import RegisterRequest
    from attune_packs.services.stages.register import RegistryPolicy, register_packs

    with mock_aws():
        _, table_args = StackResources.load(ROOT).table_definition()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName="bench", **table_args)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="bench")
        by_operation: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            by_operation[model.name] += 1

        dynamodb.meta.events.register("before-call", count)
        table = DynamoPackTable(dynamodb, "bench")
        store = S3ObjectStore(s3, "bench")
        policy = RegistryPolicy(keep_versions=2)
        runs: list[str] = []

        def register(label: str, version: str, expected_items: int | None) -> None:
            body = _archive(version, ACTIONS)
            key = f"archives/sha256/{hashlib.sha256(body).hexdigest()}.tar.gz"
            store.put_bytes(key, body)
            runs.append(label)
            by_operation.clear()
            table.calls = 0
            started = time.perf_counter()
            response = register_packs(
                RegisterRequest(pack_paths=[f"s3://bench/{key}"], installation_id=f"bench-{len(runs)}"),
                store=store,
                table=table,
                policy=policy,
            )
            elapsed = time.perf_counter() - started
            assert not response.failed_packs, response.failed_packs
            [pack] = response.registered_packs
            line = f"  {label:<34} {pack.status:<10} {table.calls:>4} DynamoDB calls in {elapsed:5.2f}s"
            if expected_items is not None:
                line += f"   (items {expected_items}: ceil(items/25) = {math.ceil(expected_items / 25)}"
                line += f", + {table.calls - math.ceil(expected_items / 25)})"
            print(line)
            print("      " + ", ".join(f"{op} {n}" for op, n in sorted(by_operation.items())))

        # items written: the components and the STAGED marker (the version record rides in the flip)
        register(f"fresh pack, {ACTIONS} actions", "1.0.0", ACTIONS + 1)
        register("same archive again (no-op)", "1.0.0", None)
        register(f"upgrade, {ACTIONS} actions", "1.1.0", ACTIONS + 1)
        register("upgrade + clean the oldest version", "1.2.0", 2 * (ACTIONS + 1))


if __name__ == "__main__":
    main()
