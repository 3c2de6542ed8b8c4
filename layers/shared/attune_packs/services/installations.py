"""Starting installations (HTTP, S3 uploads) and reporting their state."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from attune_packs.adapters.lambda_invoke import AsyncInvoker
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.adapters.stepfunctions import Executions
from attune_packs.errors import InvalidRequestError, NotFoundError
from attune_packs.models import BuildEnvsRequest, InstallRequest
from attune_packs.s3_uri import S3Location
from attune_packs.services.reports import expand_installation_output, unfinished_installation_output

STAGE_STATES = {
    "DownloadPacks": "download",
    "ResolveDependencies": "dependencies",
    "DownloadDependencies": "download_dependencies",
    "BuildEnvironments": "build_envs",
    "BuildPackEnvironment": "build_envs",
    "RegisterPacks": "register",
}
_NAME_SAFE = "abcdefghijklmnopqrstuvwxyz0123456789-_"


def installation_name(prefix: str, *parts: str) -> str:
    """A deterministic execution name: the same parts always name the same installation."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return f"{prefix}-{digest[:40]}"


def start_installation(
    request: InstallRequest, executions: Executions, *, started_by: str, idempotency_key: str | None = None
) -> dict[str, Any]:
    """``started_by`` is the authenticated principal: it replaces whatever the request carried, so
    the audit trail never holds a caller's words (those go to the untrusted ``client_label``)."""
    request = request.model_copy(update={"started_by": started_by})
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 64 or any(c not in _NAME_SAFE for c in idempotency_key.lower()):
            raise InvalidRequestError(
                "Idempotency-Key must be 1-64 letters, digits, '-' or '_'", error_code="INVALID_IDEMPOTENCY_KEY"
            )
        name = installation_name("api", idempotency_key)
    else:
        name = f"api-{uuid.uuid4().hex}"
    arn, created = executions.start(name, request.model_dump(mode="json"))
    return {"installation_id": name, "execution_arn": arn, "created": created, "started_by": started_by}


def upload_installation_name(bucket: str, key: str) -> str:
    """Upload keys are unique (uploads/<uuid>/<file>), so bucket and key name the installation."""
    return installation_name("upload", bucket, key)


def start_upload_installation(bucket: str, key: str, executions: Executions) -> dict[str, Any]:
    """An archive uploaded under uploads/ installs itself; duplicate deliveries of the event start
    one installation (the name derives from the object)."""
    if not key.startswith("uploads/") or not key.endswith((".tar.gz", ".tgz", ".zip")):
        return {"started": False, "reason": f"s3://{bucket}/{key} is not an archive under uploads/"}
    source = f"s3://{bucket}/{key}"
    name = upload_installation_name(bucket, key)
    request = InstallRequest(packs=[source], started_by=source)
    arn, created = executions.start(name, request.model_dump(mode="json"))
    return {"started": created, "installation_id": name, "execution_arn": arn, "source": source}


def installation_status(installation_id: str, executions: Executions, store: ObjectStore) -> dict[str, Any]:
    """Status, stage transitions and, once finished, the whole stage reports (see ``reports``).

    An execution's history does not last forever (90 days on AWS; the local stack's until it
    restarts): past it, the installation is answered from its stage reports, which stay in S3,
    with the status ``UNKNOWN`` and ``history_available`` false."""
    description = executions.describe(installation_id)
    if description is None:
        return _without_history(installation_id, store)
    events = executions.history(description["executionArn"])
    stage = None
    stages: list[dict[str, Any]] = []
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        exited = event.get("stateExitedEventDetails")
        if entered and entered["name"] in STAGE_STATES:
            stage = STAGE_STATES[entered["name"]]
            stages.append(
                {
                    "state": entered["name"],
                    "stage": stage,
                    "entered_at": _iso(event.get("timestamp")),
                    "exited_at": None,
                }
            )
        elif exited and exited["name"] in STAGE_STATES:
            for record in reversed(stages):
                if record["state"] == exited["name"] and record["exited_at"] is None:
                    record["exited_at"] = _iso(event.get("timestamp"))
                    break
    request = json.loads(description.get("input") or "{}")
    output = json.loads(description["output"]) if description.get("output") else None
    return {
        "installation_id": installation_id,
        "status": description["status"],
        "history_available": True,
        "current_stage": stage if description["status"] == "RUNNING" else None,
        "last_stage": stage,
        "started_at": _iso(description.get("startDate")),
        "stopped_at": _iso(description.get("stopDate")),
        "started_by": request.get("started_by"),
        "client_label": request.get("client_label"),
        "stages": stages,
        "request": request,
        "result": expand_installation_output(output, store)
        if output is not None
        else unfinished_installation_output(installation_id, store)
        if description["status"] in {"FAILED", "TIMED_OUT", "ABORTED"}
        else None,
        "error": {"error": description.get("error"), "cause": description.get("cause")}
        if description["status"] in {"FAILED", "TIMED_OUT", "ABORTED"}
        else None,
    }


def _without_history(installation_id: str, store: ObjectStore) -> dict[str, Any]:
    result = unfinished_installation_output(installation_id, store, strict=True)
    if result is None:
        raise NotFoundError(f"no installation {installation_id!r}")
    # What the stages reported, not whether the execution ended well: that was in its history.
    result.pop("status", None)
    return {
        "installation_id": installation_id,
        "status": "UNKNOWN",
        "history_available": False,
        "current_stage": None,
        "last_stage": None,
        "started_at": None,
        "stopped_at": None,
        "started_by": None,
        "client_label": None,
        "stages": [],
        "request": None,
        "result": result,
        "error": None,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


ASYNC_REPORT_PREFIX = "reports/async-builds/"


def async_build_status(installation_id: str, store: ObjectStore) -> dict[str, Any]:
    """State of a build-envs stage request that runs asynchronously (POST /packs/build-envs)."""
    report = store.head(S3Location(store.bucket, f"{ASYNC_REPORT_PREFIX}{installation_id}.json"))
    if report is None:
        raise NotFoundError(f"no installation {installation_id!r}")
    return dict(store.get_json(S3Location(store.bucket, f"{ASYNC_REPORT_PREFIX}{installation_id}.json")))


def record_async_build(installation_id: str, store: ObjectStore, status: str, result: Any = None) -> None:
    body = {
        "installation_id": installation_id,
        "status": status,
        "current_stage": "build_envs" if status == "RUNNING" else None,
        "result": result,
    }
    store.put_bytes(f"{ASYNC_REPORT_PREFIX}{installation_id}.json", json.dumps(body).encode(), "application/json")


def start_async_build(request: BuildEnvsRequest, store: ObjectStore, invoker: AsyncInvoker) -> str:
    """Hand a build-envs request to the build function, asynchronously; its id names the status
    record the function completes (``GET /packs/installs/<id>``)."""
    installation_id = f"build-{uuid.uuid4().hex}"
    record_async_build(installation_id, store, "RUNNING")
    invoker.invoke_build_envs(installation_id, request.model_dump(mode="json"))
    return installation_id
