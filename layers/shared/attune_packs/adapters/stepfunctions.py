"""Answering task tokens and starting / following installations."""

from __future__ import annotations

import json
from typing import Any, Protocol

from attune_packs.errors import IdempotencyMismatchError


class TaskTokens(Protocol):
    def succeed(self, token: str, output: dict[str, Any]) -> None: ...
    def fail(self, token: str, error: str, cause: str) -> bool: ...


class StepFunctionsTokens:
    def __init__(self, client: Any) -> None:
        self._sfn = client

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._sfn.send_task_success(taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> bool:
        """Fail the task; False when the token was already answered or has expired."""
        from botocore.exceptions import ClientError

        try:
            self._sfn.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}:
                return False
            raise
        return True


class Executions(Protocol):
    state_machine_arn: str

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]: ...
    def describe(self, name_or_arn: str) -> dict[str, Any] | None: ...
    def history(self, execution_arn: str) -> list[dict[str, Any]]: ...


class StepFunctionsExecutions:
    """The InstallPacks state machine's executions."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._sfn = client
        self.state_machine_arn = state_machine_arn

    def arn_of(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name_or_arn}"

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        """Start ``name``; (arn, False) when an execution of that name already exists with the same
        input. The same name with another input raises ``ExecutionAlreadyExists``."""
        from botocore.exceptions import ClientError

        try:
            response = self._sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            existing = self.describe(name)
            if existing is not None and json.loads(existing.get("input") or "{}") == payload:
                return existing["executionArn"], False
            raise IdempotencyMismatchError(
                f"installation {name} already exists with a different request; use a new idempotency key"
            ) from exc
        return str(response["executionArn"]), True

    def describe(self, name_or_arn: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self._sfn.describe_execution(executionArn=self.arn_of(name_or_arn)))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"ExecutionDoesNotExist", "InvalidArn"}:
                return None
            raise

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = self._sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution_arn, reverseOrder=False, PaginationConfig={"PageSize": 1000}
        )
        return [event for page in pages for event in page["events"]]
