"""A pack's test executions as a history (Attune's ``PackTestExecution``).

Two sources feed it:
- every registration that ran the pack's tests: the registered version's record carries the
  test result, the environment it ran in and the installation that ran it (``VERSION#<v>``);
- re-runs (``POST /packs/{ref}/test``): the installed version's tests run again in its built
  environments by a CodeBuild build; the run is an item ``TESTRUN#<started_at>#<id>`` that is
  completed from the build's stored report when it finishes (checked when the history is read).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.adapters.codebuild import BuildStarter
from attune_packs.adapters.s3 import ObjectStore, S3Location
from attune_packs.data import pack_tests as stored
from attune_packs.data.operations import PackTable
from attune_packs.data.packs import read_pointer, read_versions
from attune_packs.errors import InvalidRequestError, NotFoundError
from attune_packs.models import BuildOptions
from attune_packs.services.catalog import check_pack_ref

RERUN_REPORT_PREFIX = "reports/builds/tests/reruns/"
_FINISHED = {"SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"}


class TestSuite(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    name: str = ""
    type: str = ""
    status: str = ""
    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0


class PackTestExecution(BaseModel):
    """One run of a pack's tests."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid", defer_build=True)
    id: str
    pack_ref: str
    pack_version: str
    trigger: Literal["install", "rerun"]
    status: str = Field(description="running, passed, failed, partial, skipped, error")
    total_tests: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    pass_rate: float | None = None
    duration_ms: int = 0
    suites: list[TestSuite] = Field(default_factory=list)
    environment: dict[str, Any] = Field(
        default_factory=dict, description="where it ran: python/nodejs versions, environment hashes, artifacts"
    )
    report: str | None = Field(default=None, description="s3:// location of the full report")
    started_at: str | None = None
    installation_id: str | None = None
    started_by: str | None = None


class TestHistoryPage(BaseModel):
    __test__ = False
    model_config = ConfigDict(extra="forbid", defer_build=True)
    pack_ref: str
    executions: list[PackTestExecution]
    total: int
    page: int
    page_size: int


def _environment(environments: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {k: env.get(k) for k in ("env_hash", "artifact", "python_version", "nodejs_version") if env.get(k)}
        for kind, env in (environments or {}).items()
        if isinstance(env, dict)
    }


def _from_result(result: dict[str, Any], **fields: Any) -> PackTestExecution:
    suites = [TestSuite.model_validate(s) for s in result.get("suites") or [] if isinstance(s, dict)]
    rate = result.get("pass_rate")
    return PackTestExecution(
        status=str(result.get("status", "error")),
        total_tests=int(result.get("total_tests") or 0),
        passed=int(result.get("passed") or 0),
        failed=int(result.get("failed") or 0),
        skipped=int(result.get("skipped") or 0),
        pass_rate=float(rate) if isinstance(rate, int | float) and not isinstance(rate, bool) else None,
        duration_ms=int(result.get("duration_ms") or 0),
        suites=suites,
        report=result.get("report") or None,
        **fields,
    )


def _from_version(ref: str, item: dict[str, Any]) -> PackTestExecution | None:
    result = item.get("test_result")
    if not isinstance(result, dict) or result.get("status") in (None, "skipped"):
        return None
    return _from_result(
        result,
        id=f"install-{item.get('registration_id') or item['version']}",
        pack_ref=ref,
        pack_version=str(item["version"]),
        trigger="install",
        environment=_environment(item.get("environments") or {}),
        started_at=item.get("registered_at"),
        installation_id=item.get("installation_id"),
        started_by=item.get("registered_by"),
    )


def _from_rerun(item: dict[str, Any]) -> PackTestExecution:
    fields = {k: item[k] for k in PackTestExecution.model_fields if k in item}
    return PackTestExecution.model_validate(fields)


def _complete_runs(
    table: PackTable, store: ObjectStore, starter: BuildStarter | None, ref: str, items: list[dict[str, Any]]
) -> None:
    """Complete the running re-runs whose build finished (their report is stored)."""
    for item in items:
        if item.get("status") != "running" or starter is None:
            continue
        build = starter.status(str(item["build_id"]))
        if build.get("buildStatus", "IN_PROGRESS") not in _FINISHED:
            continue
        location = S3Location(store.bucket, str(item["report_key"]))
        report = store.get_json(location) if store.head(location) is not None else None
        result = report.get("test_result") if isinstance(report, dict) else None
        if isinstance(result, dict):
            done = _from_result(
                result,
                **{
                    k: item[k]
                    for k in ("id", "pack_ref", "pack_version", "trigger", "environment", "started_at", "started_by")
                },
            )
            item.update(done.model_dump(mode="json"))
        else:
            item.update({"status": "error", "report": None})
        started_at, run_id = item.pop("run_key")
        stored.save_test_run(table, ref, started_at, run_id, item)


def history(
    table: PackTable, store: ObjectStore, ref: str, *, starter: BuildStarter | None = None
) -> list[PackTestExecution]:
    """Every known execution of the pack's tests, newest first."""
    check_pack_ref(ref)
    runs = stored.read_test_runs(table, ref)
    _complete_runs(table, store, starter, ref, runs)
    executions = [e for e in (_from_version(ref, v) for v in read_versions(table, ref)) if e]
    executions += [_from_rerun(item) for item in runs]
    if not executions and read_pointer(table, ref) is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    return sorted(executions, key=lambda e: (e.started_at or "", e.id), reverse=True)


def page(executions: list[PackTestExecution], ref: str, page: int, page_size: int) -> TestHistoryPage:
    start = (page - 1) * page_size
    return TestHistoryPage(
        pack_ref=ref,
        executions=executions[start : start + page_size],
        total=len(executions),
        page=page,
        page_size=page_size,
    )


def rerun(
    table: PackTable, store: ObjectStore, starter: BuildStarter, ref: str, *, architecture: str, started_by: str
) -> PackTestExecution:
    """Run the installed version's tests again, in its built environments (a CodeBuild build that
    builds nothing: the environments are found stored). Answers the running execution."""
    from attune_packs.services.stages.build_envs import prepare, start_build
    from attune_packs.services.stored_packs import load_pack

    check_pack_ref(ref)
    current = read_pointer(table, ref)
    if current is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    environments = current.get("environments") or {}
    options = BuildOptions(
        python_version=str((environments.get("python") or {}).get("python_version") or "3.12")[:4].rstrip("."),
        nodejs_version=str((environments.get("nodejs") or {}).get("nodejs_version") or "20").split(".")[0],
    )
    plan = prepare(load_pack(str(current["archive"]), store), options, store, architecture)
    if plan.tests is None or not plan.tests.run:
        raise InvalidRequestError(f"pack {ref} declares no enabled tests", error_code="PACK_HAS_NO_TESTS")
    run_id = uuid.uuid4().hex
    plan.tests = dataclasses.replace(plan.tests, key=f"{RERUN_REPORT_PREFIX}{ref}/{run_id}.json")
    build_id = start_build(plan, options, starter=starter, store=store, architecture=architecture)
    started_at = datetime.now(UTC).isoformat()
    execution = PackTestExecution(
        id=f"rerun-{run_id}",
        pack_ref=ref,
        pack_version=str(current["version"]),
        trigger="rerun",
        status="running",
        environment=_environment(environments),
        started_at=started_at,
        started_by=started_by,
    )
    fields = {"build_id": build_id, "report_key": plan.tests.key, **execution.model_dump(mode="json")}
    stored.save_test_run(table, ref, started_at, run_id, fields)
    return execution
