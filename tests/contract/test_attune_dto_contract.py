"""This API against Attune's pack DTOs (``tests/fixtures/attune_dto``, written from Attune's field
lists): every Attune request body is accepted field for field, and every field an Attune client
reads from a response is there with its JSON type. Renaming or dropping a field fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from attune_packs.api import attune_shapes as shapes
from attune_packs.api.install_routes import InstallBody
from attune_packs.api.stage_routes import (
    BuildEnvsBody,
    DependenciesBody,
    DownloadPacksBody,
    RegisterBatchBody,
    RegisterPackBody,
    RegisterPackData,
)
from attune_packs.models import (
    AnalyzedPack,
    BuildEnvsResponse,
    BuildSummary,
    BuiltEnvironment,
    DependenciesResponse,
    Dependency,
    DownloadedPack,
    DownloadResponse,
    EnvironmentArtifact,
    NodeRequirements,
    PackFailure,
    PythonRequirements,
    RegisteredPack,
    RegisterResponse,
    RegisterSummary,
    RuntimeRequirements,
)
from attune_packs.services.pack_updates import PackUpdate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "attune_dto"
REQUESTS = json.loads((FIXTURES / "requests.json").read_text())
RESPONSES = json.loads((FIXTURES / "responses.json").read_text())

BODY_MODELS: dict[str, type[BaseModel]] = {
    "DownloadPacksRequest": DownloadPacksBody,
    "GetPackDependenciesRequest": DependenciesBody,
    "BuildPackEnvsRequest": BuildEnvsBody,
    "RegisterPacksRequest": RegisterBatchBody,
    "InstallPackRequest": InstallBody,
    "RegisterPackRequest": RegisterPackBody,
    "UpdatePackRequest": PackUpdate,
}
ATTUNE_REQUESTS = sorted(k for k in REQUESTS if not k.startswith("_"))


def test_every_attune_request_type_has_a_body_model() -> None:
    assert set(ATTUNE_REQUESTS) == set(BODY_MODELS)


@pytest.mark.parametrize("name", ATTUNE_REQUESTS)
def test_attunes_request_is_accepted_field_for_field(name: str) -> None:
    spec, model = REQUESTS[name], BODY_MODELS[name]
    missing = set(spec["fields"]) - set(model.model_fields)
    assert not missing, f"{model.__name__} lacks Attune's {sorted(missing)}"
    model.model_validate(spec["example"])
    required = {f: spec["example"][f] for f, kind in spec["fields"].items() if "?" not in kind and "=" not in kind}
    model.model_validate(required)


@pytest.mark.parametrize("name", ATTUNE_REQUESTS)
def test_optional_attune_fields_may_be_null_or_absent(name: str) -> None:
    spec, model = REQUESTS[name], BODY_MODELS[name]
    nulls = {f: None for f, kind in spec["fields"].items() if kind.endswith("?")}
    model.model_validate({**spec["example"], **nulls})


@pytest.mark.parametrize("name", ATTUNE_REQUESTS)
def test_fields_neither_attunes_nor_ours_are_still_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        BODY_MODELS[name].model_validate({**REQUESTS[name]["example"], "destination_folder_typo": "x"})


# --- responses --------------------------------------------------------------------------------------

ARCHIVE = "s3://packs/archives/sha256/" + "a" * 64 + ".tar.gz"


def _env(kind: str) -> EnvironmentArtifact:
    version = {"python_version": "3.12"} if kind == "python" else {"nodejs_version": "20"}
    return EnvironmentArtifact(
        artifact=f"s3://packs/envs/{'b' * 64}/{kind}.tar.gz",
        env_hash="b" * 64,
        requirements_installed=["requests"],
        package_count=3,
        cached=False,
        **version,  # type: ignore[arg-type]
    )


def produced() -> dict[str, dict[str, Any]]:
    """What this API answers in ``data`` for one realistic result of each stage."""
    failure = PackFailure(source="https://x.invalid/p.tar.gz", pack_ref="p", error="gone", error_code="SOURCE_GONE")
    download = DownloadResponse(
        downloaded_packs=[
            DownloadedPack(
                source="core_utils",
                source_type="registry",
                pack_ref="core_utils",
                pack_version="1.0.0",
                archive=ARCHIVE,
                checksum="sha256:" + "a" * 64,
                size_bytes=10,
                stored=True,
            )
        ],
        failed_packs=[failure],
        pack_paths=[ARCHIVE],
        total_count=2,
        success_count=1,
        failure_count=1,
    )
    dependencies = DependenciesResponse(
        dependencies=[
            Dependency(
                pack_ref="core", version_spec=">=1", required_by="slack@2.1.0", already_installed=False, satisfied=False
            )
        ],
        runtime_requirements={
            "slack": RuntimeRequirements(
                python=PythonRequirements(version=">=3.9", requirements_file="requirements.txt"),
                nodejs=NodeRequirements(version="20", package_file="package.json"),
            )
        },
        missing_dependencies=["core@=1.2.0"],
        conflicts=[],
        install_order=["core", "slack"],
        analyzed_packs=[
            AnalyzedPack(pack_ref="slack", pack_version="2.1.0", archive=ARCHIVE, needs_python=True, needs_nodejs=False)
        ],
        errors=[failure],
    )
    builds = BuildEnvsResponse(
        built_environments=[
            BuiltEnvironment(
                pack_ref="slack",
                archive=ARCHIVE,
                duration_ms=5,
                environments={"python": _env("python"), "nodejs": _env("nodejs")},
            )
        ],
        failed_environments=[failure],
        summary=BuildSummary(
            total_packs=2,
            success_count=1,
            failure_count=1,
            python_envs_built=1,
            nodejs_envs_built=1,
            cache_hits=0,
            total_duration_ms=5,
        ),
    )
    registered = RegisterResponse(
        registered_packs=[
            RegisteredPack(
                pack_ref="slack",
                pack_id="slack@2.1.0",
                pack_version="2.1.0",
                storage_path=ARCHIVE,
                components_registered={
                    "actions": 1,
                    "sensors": 0,
                    "triggers": 0,
                    "rules": 0,
                    "workflows": 0,
                    "policies": 0,
                    "runtimes": 0,
                    "permission_sets": 0,
                    "queues": 0,
                    "aliases": 0,
                },
                test_result={"status": "passed", "total_tests": 2, "passed": 2, "failed": 0},
                validation_results={"valid": True, "warnings": []},
                status="registered",
            )
        ],
        failed_packs=[failure],
        summary=RegisterSummary(total_packs=2, success_count=1, failure_count=1, total_components=1, duration_ms=3),
    )
    register_data = shapes.register_data(registered)
    return {
        "DownloadPacksResponse": shapes.download_data(download).model_dump(mode="json"),
        "GetPackDependenciesResponse": shapes.dependencies_data(dependencies).model_dump(mode="json"),
        "BuildPackEnvsResponse": shapes.build_envs_data(builds).model_dump(mode="json"),
        "RegisterPacksResponse": register_data.model_dump(mode="json"),
        "PackInstallResponse": RegisterPackData(
            pack=shapes.attune_pack({"ref": "slack", "label": "Slack", "description": None, "version": "2.1.0"}),
            test_result=register_data.registered_packs[0].test_result,
            tests_skipped=False,
            registration=register_data,
        ).model_dump(mode="json"),
    }


_TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict}


def problems(value: Any, spec: Any, path: str) -> list[str]:
    """Where ``value`` lacks a field of ``spec`` or holds another JSON type."""
    if isinstance(spec, str):
        if spec.endswith("?") and value is None:
            return []
        kind = spec.rstrip("?")
        if kind.startswith("array<"):
            inner = _TYPES[kind[6:-1]]
            ok = isinstance(value, list) and all(isinstance(v, inner) for v in value)
        else:
            expected = _TYPES[kind]
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        return [] if ok else [f"{path}: {spec} expected, got {value!r}"]
    if isinstance(spec, list):
        if not isinstance(value, list) or not value:
            return [f"{path}: a non-empty array expected, got {value!r}"]
        return [p for i, item in enumerate(value) for p in problems(item, spec[0], f"{path}[{i}]")]
    if spec.get("?") and value is None:
        return []
    if not isinstance(value, dict):
        return [f"{path}: an object expected, got {value!r}"]
    if "*" in spec:
        return [p for k, v in value.items() for p in problems(v, spec["*"], f"{path}.{k}")] or (
            [f"{path}: no entry to check"] if not value else []
        )
    found = []
    for field, inner in spec.items():
        if field == "?":
            continue
        if field not in value:
            found.append(f"{path}.{field}: missing")
        else:
            found += problems(value[field], inner, f"{path}.{field}")
    return found


ANSWERS = produced()


@pytest.mark.parametrize("name", sorted(k for k in RESPONSES if not k.startswith("_")))
def test_every_field_attune_reads_is_answered_with_its_type(name: str) -> None:
    assert problems(ANSWERS[name], RESPONSES[name], name) == []


def test_the_checker_notices_a_renamed_field() -> None:
    renamed = json.loads(json.dumps(ANSWERS["DownloadPacksResponse"]).replace('"pack_path"', '"archive_path"'))
    assert problems(renamed, RESPONSES["DownloadPacksResponse"], "d") == ["d.downloaded_packs[0].pack_path: missing"]
