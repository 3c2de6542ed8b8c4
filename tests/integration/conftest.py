"""Integration fixtures: the embedded local stack (moto on loopback, real ASL, real handlers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune_cli.backends import Backend, ExecutionResult
from attune_cli.local_stack import LocalStack
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.models import InstallRequest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_INDEX = str(ROOT / "examples" / "index.json")


class Harness:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.table = DynamoPackTable(stack.client("dynamodb"), stack.table)
        self.backend = Backend(
            stack.client("stepfunctions"),
            self.table,
            stack.state_machine_arn,
            s3=stack.client("s3"),
            bucket=stack.bucket,
        )

    def install(self, *packs: str, **options: Any) -> ExecutionResult:
        options.setdefault("registry_url", EXAMPLES_INDEX)
        execution = self.backend.start_install(InstallRequest(packs=list(packs), **options))
        return self.backend.follow(execution.arn, lambda _event: None, poll_seconds=0.2, timeout=900)

    def backend_with_services(self) -> Backend:
        """The backend with the stack's API function settings, for in-process services (plan, lock)."""
        self.backend.service_environment = self.stack.functions[self.stack.names["ServeApiFunction"]].environment
        return self.backend

    def keys(self, prefix: str) -> list[str]:
        s3 = self.stack.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.stack.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def harness(state_dir: Path) -> Iterator[Harness]:
    with LocalStack(state_dir) as stack:
        yield Harness(stack)
