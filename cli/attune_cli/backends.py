"""Where the CLI's commands run: the embedded local stack, or a stack deployed on AWS.

Both backends start the same state machine with the same input and read the same table through
the same service code; only the endpoints differ.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: a CLI command that talks to an API needs none of them
    from attune_packs.adapters.dynamodb import DynamoPackTable
    from attune_packs.models import InstallRequest


@dataclass
class Execution:
    arn: str
    name: str


@dataclass
class ExecutionResult:
    status: str
    output: dict[str, Any] | None
    error: str | None = None
    cause: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class Backend:
    """The operations the CLI needs, over boto3 clients (moto's or AWS's)."""

    def __init__(self, sfn: Any, table: DynamoPackTable, state_machine_arn: str, *, s3: Any, bucket: str) -> None:
        self.sfn = sfn
        self.table = table
        self.state_machine_arn = state_machine_arn
        self.s3 = s3
        self.bucket = bucket
        # The environment of the stack's API function: the local stack runs synchronous services
        # (plan, lock) in-process with it (see attune_cli.planning). None: use the API.
        self.service_environment: dict[str, str] | None = None

    def upload(self, archive: Path) -> str:
        """Put the archive under uploads/ (as a client would); returns the installation it starts."""
        from attune_packs.services.installations import upload_installation_name

        key = f"uploads/{uuid.uuid4().hex}/{archive.name}"
        with archive.open("rb") as body:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return upload_installation_name(self.bucket, key)

    def wait_until_started(self, installation_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sfn.describe_execution(executionArn=self.execution_arn(installation_id))
                return
            except self.sfn.exceptions.ExecutionDoesNotExist:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no installation {installation_id} started within {timeout:.0f}s") from None
                time.sleep(0.3)

    def start_install(self, request: InstallRequest) -> Execution:
        name = f"install-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        response = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(request.model_dump(mode="json"))
        )
        return Execution(response["executionArn"], name)

    def execution_arn(self, installation_id: str) -> str:
        if installation_id.startswith("arn:"):
            return installation_id
        base = self.state_machine_arn.replace(":stateMachine:", ":execution:")
        return f"{base}:{installation_id}"

    def follow(
        self,
        execution_arn: str,
        on_event: Callable[[dict[str, Any]], None],
        *,
        poll_seconds: float = 0.5,
        timeout: float = 7200,
    ) -> ExecutionResult:
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            description = self.sfn.describe_execution(executionArn=execution_arn)
            events = self._history(execution_arn)
            for event in events[seen:]:
                on_event(event)
            seen = len(events)
            status = description["status"]
            if status != "RUNNING":
                from attune_packs.adapters.s3 import S3ObjectStore
                from attune_packs.services.reports import expand_installation_output, unfinished_installation_output

                output = json.loads(description["output"]) if description.get("output") else None
                store = S3ObjectStore(self.s3, self.bucket)
                if output is not None:
                    output = expand_installation_output(output, store)
                elif status in {"FAILED", "TIMED_OUT", "ABORTED"}:  # what the stages reported before
                    output = unfinished_installation_output(execution_arn.rsplit(":", 1)[-1], store)
                return ExecutionResult(status, output, description.get("error"), description.get("cause"), events)
            if time.monotonic() > deadline:
                return ExecutionResult("TIMED_OUT_WAITING", None, "the CLI stopped waiting", None, events)
            time.sleep(poll_seconds)

    def _history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return sorted(events, key=lambda e: e["id"])
            kwargs["nextToken"] = page["nextToken"]

    def list_packs(self) -> list[dict[str, Any]]:
        from attune_packs.services import catalog

        return catalog.list_packs(self.table)

    def show_pack(self, ref: str) -> dict[str, Any]:
        from attune_packs.adapters.s3 import S3ObjectStore
        from attune_packs.services import catalog

        return catalog.with_manifest_read_back(
            catalog.show_pack(self.table, ref), lambda: S3ObjectStore(self.s3, self.bucket)
        )

    def remove_pack(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        from attune_packs.services import lifecycle

        return lifecycle.remove_pack(self.table, ref, force=force, requested_by="cli").model_dump(mode="json")

    def rollback_pack(self, ref: str, version: str | None = None, *, force: bool = False) -> dict[str, Any]:
        from attune_packs.services import lifecycle

        store = self._pack_store(ref)
        result = lifecycle.rollback_pack(self.table, store, ref, version, force=force, requested_by="cli")
        return result.model_dump(mode="json")

    def list_components(self, component_type: str, *, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        from attune_packs.services import catalog

        return catalog.list_components(self.table, component_type, limit=limit, cursor=cursor)

    def _pack_store(self, ref: str) -> Any:
        """The bucket holding the pack's archives (named by its registry record), through the
        process's S3 client: the local stack's while it runs, else AWS's."""
        from attune_packs.adapters.clients import client
        from attune_packs.adapters.s3 import S3ObjectStore, parse_s3_uri
        from attune_packs.data.packs import read_pointer
        from attune_packs.errors import NotFoundError
        from attune_packs.services import catalog

        current = read_pointer(self.table, catalog.check_pack_ref(ref))
        if current is None:
            raise NotFoundError(f"pack {ref!r} is not installed")
        return S3ObjectStore(client("s3"), parse_s3_uri(str(current["archive"])).bucket)


@contextmanager
def local_backend(state_dir: Path | None) -> Iterator[Backend]:
    from attune_cli.local_stack import LocalStack
    from attune_packs.adapters.dynamodb import DynamoPackTable

    with LocalStack(state_dir) as stack:
        table = DynamoPackTable(stack.client("dynamodb"), stack.table)
        backend = Backend(
            stack.client("stepfunctions"), table, stack.state_machine_arn, s3=stack.client("s3"), bucket=stack.bucket
        )
        backend.service_environment = stack.functions[stack.names["ServeApiFunction"]].environment
        yield backend


@contextmanager
def aws_backend(stack_name: str) -> Iterator[Backend]:
    import boto3

    from attune_packs.adapters.dynamodb import DynamoPackTable

    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
    }
    table = DynamoPackTable(boto3.client("dynamodb"), outputs["PacksTableName"])
    yield Backend(
        boto3.client("stepfunctions"),
        table,
        outputs["InstallPacksStateMachineArn"],
        s3=boto3.client("s3"),
        bucket=outputs["PacksBucketName"],
    )


def open_backend(*, stack_name: str | None, state_dir: Path | None) -> AbstractContextManager[Backend]:
    if stack_name:
        return aws_backend(stack_name)
    return local_backend(state_dir)
