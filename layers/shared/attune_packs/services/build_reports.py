"""Answer a build's task token when CodeBuild reports that the build ended badly.

The buildspec answers its own token in post_build. When a build fails before it can (install or
pre_build failure), times out or is stopped, EventBridge delivers CodeBuild's state-change event
here and the token is failed with what CodeBuild says went wrong, so no Map item waits forever.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.adapters.stepfunctions import TaskTokens

FAILED_STATES = {"FAILED", "STOPPED", "TIMED_OUT", "FAULT"}


class EnvVar(BaseModel):
    name: str
    value: str = ""


class BuildStateDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    build_status: str = Field(alias="build-status")
    build_id: str = Field(alias="build-id")
    project_name: str = Field(default="", alias="project-name")
    additional_information: dict[str, Any] = Field(default_factory=dict, alias="additional-information")

    def variable(self, name: str) -> str:
        environment = self.additional_information.get("environment") or {}
        for var in environment.get("environment-variables") or []:
            if var.get("name") == name:
                return str(var.get("value") or "")
        return ""

    def phase_problems(self) -> list[str]:
        problems = []
        for phase in self.additional_information.get("phases") or []:
            if phase.get("phase-status") not in (None, "SUCCEEDED"):
                context = "; ".join(str(c) for c in phase.get("phase-context") or [] if c)
                problems.append(f"{phase.get('phase-type')}: {phase.get('phase-status')} {context}".strip())
        return problems


def report_build_state(detail: BuildStateDetail, tokens: TaskTokens) -> dict[str, Any]:
    token = detail.variable("TASK_TOKEN")
    if detail.build_status not in FAILED_STATES or not token:
        return {"answered": False, "reason": "nothing to answer"}
    logs = (detail.additional_information.get("logs") or {}).get("deep-link", "")
    cause = {
        "error_code": "BUILD_FAILED",
        "pack_ref": detail.variable("PACK_REF"),
        "build_id": detail.build_id,
        "status": detail.build_status,
        "message": f"environment build of {detail.variable('PACK_REF')} ended {detail.build_status}",
        "phases": detail.phase_problems(),
        "logs": logs,
    }
    answered = tokens.fail(token, "BuildError", json.dumps(cause))
    return {"answered": answered, "build_id": detail.build_id}
