"""Answering task tokens and starting / following installations."""

from __future__ import annotations

import json
from typing import Any, Protocol


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
