"""Starting environment builds on CodeBuild."""

from __future__ import annotations

from typing import Any, Protocol

from attune_packs.errors import ThrottledError


class BuildStarter(Protocol):
    def start(
        self, *, buildspec: str, environment: dict[str, str], timeout_minutes: int, idempotency_token: str
    ) -> str: ...
    def status(self, build_id: str) -> dict[str, Any]: ...


class CodeBuildStarter:
    def __init__(self, client: Any, project_name: str) -> None:
        self._cb = client
        self.project_name = project_name

    def start(
        self, *, buildspec: str, environment: dict[str, str], timeout_minutes: int, idempotency_token: str
    ) -> str:
        from botocore.exceptions import ClientError

        try:
            response = self._cb.start_build(
                projectName=self.project_name,
                buildspecOverride=buildspec,
                timeoutInMinutesOverride=timeout_minutes,
                idempotencyToken=idempotency_token[:64],
                environmentVariablesOverride=[
                    {"name": name, "value": value, "type": "PLAINTEXT"} for name, value in sorted(environment.items())
                ],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"ThrottlingException", "AccountLimitExceededException"}:
                raise ThrottledError("CodeBuild refused to start a build now (throttled)") from exc
            raise
        return str(response["build"]["id"])

    def status(self, build_id: str) -> dict[str, Any]:
        builds = self._cb.batch_get_builds(ids=[build_id]).get("builds", [])
        return dict(builds[0]) if builds else {}
