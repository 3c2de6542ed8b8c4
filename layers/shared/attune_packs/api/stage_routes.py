"""The four stage routes as Attune's core-pack wrappers call them, and ``POST /packs/register``.

Request bodies accept Attune's DTOs field for field (``DownloadPacksRequest``,
``GetPackDependenciesRequest``, ``BuildPackEnvsRequest``, ``RegisterPacksRequest``,
``RegisterPackRequest``); the fields naming local folders are accepted and documented as having
no effect, because archives and environments live in S3. Unknown fields are still refused.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from attune_packs import wiring
from attune_packs.api import attune_shapes as shapes
from attune_packs.api.app import PREFIX, app, data, principal
from attune_packs.api.openapi import responses
from attune_packs.errors import InvalidRequestError, RegistrationConflictError
from attune_packs.models import (
    BuildEnvsRequest,
    BuildReference,
    DependenciesRequest,
    DownloadRequest,
    Reported,
)
from attune_packs.services import installations

LOCAL_FOLDER = (
    "Attune's local folder for {what}: accepted and ignored, because this installer keeps {where} in S3 "
    "(never a local path); any string or null"
)


class DownloadPacksBody(DownloadRequest):
    """Attune's DownloadPacksRequest plus this project's fields."""

    destination_dir: str | None = Field(
        default=None,
        max_length=4096,
        description=LOCAL_FOLDER.format(what="downloads", where="archives content-addressed under archives/sha256/"),
    )


class DependenciesBody(DependenciesRequest):
    """Attune's GetPackDependenciesRequest plus this project's fields."""


class BuildEnvsBody(BuildEnvsRequest):
    """Attune's BuildPackEnvsRequest plus this project's fields."""

    packs_base_dir: str | None = Field(
        default=None, max_length=4096, description=LOCAL_FOLDER.format(what="packs", where="pack archives")
    )


class RegisterBatchBody(Reported):
    """Attune's RegisterPacksRequest plus ``build_results``: references to build reports the build
    stage stored (with their sha256). Inline environments or test results are refused."""

    pack_paths: list[str] = Field(min_length=1, max_length=500)
    packs_base_dir: str | None = Field(
        default=None, max_length=4096, description=LOCAL_FOLDER.format(what="packs", where="pack archives")
    )
    skip_validation: bool = False
    skip_tests: bool = False
    force: bool = False
    build_results: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=500,
        description="references {pack_ref, pack_version?, report, sha256} to results the build stage stored; "
        "inline environments or test results are refused (400 BUILD_RESULT_UNTRUSTED)",
    )

    @field_validator("build_results")
    @classmethod
    def _references_only(cls, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, result in enumerate(results):
            inline = sorted({"environments", "test_result", "failed", "duration_ms"} & set(result))
            if inline:
                raise ValueError(
                    f"item {index} carries {', '.join(inline)}: build and test results come only from the build "
                    "stage; send a reference {pack_ref, report, sha256} to what it stored"
                )
            BuildReference.model_validate(result)
        return results


class RegisterPackBody(BaseModel):
    """Attune's RegisterPackRequest: one pack, here from an s3:// location in this deployment's bucket."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)
    path: str = Field(min_length=6, max_length=1024, description="s3://<this bucket>/<key> of a pack archive")
    skip_tests: bool = False
    force: bool = False
    skip_validation: bool = False


@app.post(f"{PREFIX}/packs/download", responses=responses(200, shapes.DownloadPacksData, "the stage's report"))
def download(request: DownloadPacksBody) -> Response[Any]:
    from attune_packs.services.stages.download import download_packs

    _no_report_key(request)
    stage_request = DownloadRequest.model_validate(request.model_dump(exclude={"destination_dir"}))
    result = download_packs(
        stage_request, wiring.object_store(), wiring.settings(), stored_indices=wiring.stored_indices()
    )
    return data(shapes.download_data(result))


@app.post(f"{PREFIX}/packs/dependencies", responses=responses(200, shapes.DependenciesData, "the stage's report"))
def dependencies(request: DependenciesBody) -> Response[Any]:
    from attune_packs.services.stages.dependencies import analyze_dependencies

    _no_report_key(request)
    stage_request = DependenciesRequest.model_validate(request.model_dump())
    result = analyze_dependencies(stage_request, wiring.object_store(), wiring.pack_table(), wiring.settings())
    return data(shapes.dependencies_data(result))


@app.post(
    f"{PREFIX}/packs/build-envs",
    responses={
        **responses(200, shapes.BuildEnvsData, "every environment was stored already: the whole report"),
        **responses(202, shapes.BuildEnvsData, "builds started: status RUNNING, poll status_url"),
    },
)
def build_envs(request: BuildEnvsBody) -> Response[Any]:
    """Environments already stored answer at once (200). Builds outlast API Gateway's 29 s: when
    one is needed the work continues asynchronously (202); poll the status URL."""
    from attune_packs.services import stored_environments

    options = BuildEnvsRequest.model_validate(request.model_dump(exclude={"packs_base_dir"}))
    store = wiring.object_store()
    found = stored_environments.look_up(options, store, wiring.settings().target_architecture)
    if not found.pending:
        return data(shapes.build_envs_data(found.response()))
    installation_id = installations.start_async_build(options, store, wiring.async_invoker())
    shaped = shapes.build_envs_data(
        found.response(),
        status="RUNNING",
        installation_id=installation_id,
        status_url=f"{PREFIX}/packs/installs/{installation_id}",
        pending_packs=found.pending,
    )
    return data(shaped, status=202)


@app.post(f"{PREFIX}/packs/register-batch", responses=responses(200, shapes.RegisterPacksData, "the stage's report"))
def register_batch(request: RegisterBatchBody) -> Response[Any]:
    _no_report_key(request)
    references = [BuildReference.model_validate(r) for r in request.build_results]
    return data(_register(request.pack_paths, request, references))


def _register(
    pack_paths: list[str], options: RegisterBatchBody | RegisterPackBody, references: list[BuildReference]
) -> shapes.RegisterPacksData:
    from attune_packs.models import RegisterRequest
    from attune_packs.services import registration_gate as gate
    from attune_packs.services.stages.register import RegistryPolicy, register_packs

    store, table = wiring.object_store(), wiring.pack_table()
    gate.check_build_references(references, store)
    refused = gate.refused_by_dependency_rules(pack_paths, store, table, strict=not options.skip_validation)
    accepted = [p for p in pack_paths if p not in {f.source for f in refused}]
    if not accepted:
        from attune_packs.models import RegisterResponse, RegisterSummary

        empty = RegisterResponse(
            registered_packs=[],
            failed_packs=[],
            summary=RegisterSummary(total_packs=0, success_count=0, failure_count=0, total_components=0, duration_ms=0),
        )
        return shapes.register_data(empty, refused)
    stage_request = RegisterRequest(
        pack_paths=accepted,
        skip_validation=options.skip_validation,
        skip_tests=options.skip_tests,
        force=options.force,
        requested_by=principal(),
        build_results=list(references),
    )
    policy = RegistryPolicy(keep_versions=wiring.settings().keep_versions)
    return shapes.register_data(register_packs(stage_request, store=store, table=table, policy=policy), refused)


class RegisterPackData(BaseModel):
    """Attune's PackInstallResponse (``pack``, ``test_result``, ``tests_skipped``) plus the registration."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    pack: dict[str, Any] = Field(description="the pack as GET /packs/{ref} shows it")
    test_result: dict[str, Any] | None = None
    tests_skipped: bool
    registration: shapes.RegisterPacksData


@app.post(f"{PREFIX}/packs/register", responses=responses(200, RegisterPackData, "the pack, registered"))
def register_one(body: RegisterPackBody) -> Response[Any]:
    """One pack from this bucket. An archive the download stage has not checked yet (an upload)
    is checked and stored content-addressed first: registration only ever reads checked archives."""
    from attune_packs.services import catalog
    from attune_packs.services.stages.download import download_packs

    store = wiring.object_store()
    if not body.path.startswith(f"s3://{store.bucket}/"):
        raise InvalidRequestError(
            f"path must be an s3:// location in this deployment's bucket (s3://{store.bucket}/...)",
            details=[{"field": "path", "problem": "not in this bucket"}],
        )
    downloaded = download_packs(
        DownloadRequest(packs=[body.path]), store, wiring.settings(), stored_indices=wiring.stored_indices()
    )
    if downloaded.failed_packs:
        failure = downloaded.failed_packs[0]
        raise InvalidRequestError(failure.error, error_code=failure.error_code, details=failure.details)
    registration = _register(downloaded.pack_paths, body, [])
    if not registration.registered_packs:
        failure = registration.failed_packs[0]
        conflict = failure.error_code in _CONFLICTS or "CONFLICT" in failure.error_code
        error = RegistrationConflictError if conflict else InvalidRequestError
        raise error(failure.error, error_code=failure.error_code, details=registration.model_dump(mode="json"))
    registered = registration.registered_packs[0]
    answer = RegisterPackData(
        pack=shapes.attune_pack(catalog.show_pack(wiring.pack_table(), registered.pack_ref)),
        test_result=registered.test_result,
        tests_skipped=body.skip_tests,
        registration=registration,
    )
    return data(answer)


# Registration failures that are about the registry's state (Attune answers these 409 too).
_CONFLICTS = {"VERSION_CONTENT_MISMATCH", "DOWNGRADE_REFUSED", "PACK_HAS_DEPENDENTS", "DEPENDENT_CONFLICT"}


def _no_report_key(request: Reported) -> None:
    """Stage reports belong to state machine executions: an API client may not write one."""
    if request.report_key is not None:
        raise InvalidRequestError(
            "invalid request: report_key: reserved for the state machine",
            details=[{"field": "report_key", "problem": "reserved for the state machine"}],
        )
