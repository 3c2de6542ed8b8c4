"""Asynchronous invocation of the build-envs function for the HTTP stage endpoint."""

from __future__ import annotations

import json
from typing import Any, Protocol


class AsyncInvoker(Protocol):
    def invoke_build_envs(self, installation_id: str, request: dict[str, Any]) -> None: ...


class LambdaAsyncInvoker:
    def __init__(self, client: Any, build_envs_function: str) -> None:
        self._lambda = client
        self.build_envs_function = build_envs_function

    def invoke_build_envs(self, installation_id: str, request: dict[str, Any]) -> None:
        self._lambda.invoke(
            FunctionName=self.build_envs_function,
            InvocationType="Event",
            Payload=json.dumps({"async_build": request, "installation_id": installation_id}).encode(),
        )
