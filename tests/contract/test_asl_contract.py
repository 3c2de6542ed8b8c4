"""The state machine, the template, the error classes and the stage models agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from attune_cli.template import StackResources
from attune_packs import errors, models
from attune_packs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachine" / "install_packs.asl.json"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
REQUEST_MODELS = {
    "DownloadPacksFunctionArn": models.DownloadRequest,
    "GetPackDependenciesFunctionArn": models.DependenciesRequest,
    "BuildPackEnvsFunctionArn": models.BuildTask,
    "RegisterPacksFunctionArn": models.RegisterRequest,
}


def all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, state in states.items():
        found[name] = state
        for nested in (state.get("ItemProcessor") or state.get("Iterator") or {},):
            found.update(all_states(nested.get("States", {})))
        for branch in state.get("Branches", []):
            found.update(all_states(branch["States"]))
    return found


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    return json.loads(ASL_PATH.read_text())


@pytest.fixture(scope="module")
def tasks(asl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in all_states(asl["States"]).items() if s["Type"] == "Task"}


def function_of(task: dict[str, Any]) -> str:
    target = (
        task["Parameters"].get("FunctionName") if task["Resource"].startswith("arn:aws:states") else task["Resource"]
    )
    match = re.fullmatch(r"\$\{(\w+)\}", target)
    assert match, f"task target {target!r} is not a definition substitution"
    return match.group(1)


def test_every_substitution_in_the_asl_is_defined_by_the_template_and_none_is_unused(asl: dict[str, Any]) -> None:
    used = set(re.findall(r"\$\{(\w+)\}", ASL_PATH.read_text()))
    _, _, defined = StackResources.load(ROOT).state_machine()
    assert used == set(defined)


def test_every_task_retries_lambda_service_errors_with_backoff_and_catches_everything(tasks: dict) -> None:
    assert tasks
    for name, task in tasks.items():
        retried = {e for r in task.get("Retry", []) for e in r["ErrorEquals"]}
        assert LAMBDA_SERVICE_ERRORS <= retried, name
        assert all(r.get("BackoffRate", 1) > 1 and r["MaxAttempts"] <= 5 for r in task["Retry"]), name
        assert any("States.ALL" in c["ErrorEquals"] for c in task.get("Catch", [])), name


def test_business_errors_are_never_retried(tasks: dict) -> None:
    for name, task in tasks.items():
        for retrier in task["Retry"]:
            assert not {"States.ALL", "States.TaskFailed"} & set(retrier["ErrorEquals"]), name


def test_every_custom_error_name_is_a_transient_error_class(tasks: dict) -> None:
    for task in tasks.values():
        for retrier in task["Retry"]:
            for name in retrier["ErrorEquals"]:
                if name.startswith(("Lambda.", "States.")):
                    continue
                cls = getattr(errors, name, None)
                assert isinstance(cls, type) and issubclass(cls, errors.TransientError), name


def test_task_payloads_only_use_fields_their_request_model_accepts(tasks: dict) -> None:
    for name, task in tasks.items():
        params = task["Parameters"]
        payload = params.get("Payload", params)
        fields = {k.removesuffix(".$") for k in payload if k != "FunctionName"}
        model = REQUEST_MODELS[function_of(task)]
        assert fields <= set(model.model_fields), f"{name}: {fields - set(model.model_fields)}"


def test_build_options_passed_to_the_map_match_the_build_options_model(asl: dict[str, Any]) -> None:
    selector = asl["States"]["BuildEnvironments"]["ItemSelector"]["options"]
    assert {k.removesuffix(".$") for k in selector} <= set(models.BuildOptions.model_fields)


def test_every_build_option_an_installation_accepts_reaches_the_builds(asl: dict[str, Any]) -> None:
    selector = asl["States"]["BuildEnvironments"]["ItemSelector"]["options"]
    shared = (set(models.BuildOptions.model_fields) & set(models.InstallRequest.model_fields)) - {"timeout"}
    assert {f"{name}.$": f"$.request.{name}" for name in shared}.items() <= selector.items()
    assert selector["timeout.$"] == "$.request.build_timeout"


def test_registration_gets_only_the_packs_the_dependency_stage_lets_through(asl: dict[str, Any]) -> None:
    params = asl["States"]["RegisterPacks"]["Parameters"]
    assert params["pack_paths.$"] == "$.deps.registrable_paths"
    assert params["requested_by.$"] == "$.request.started_by"


def test_the_install_request_model_provides_every_request_field_the_asl_reads(asl: dict[str, Any]) -> None:
    read = set(re.findall(r"\$\.request\.(\w+)", ASL_PATH.read_text()))
    assert read <= set(models.InstallRequest.model_fields)


def test_the_dependency_loop_is_bounded_by_the_rounds_the_stages_know(asl: dict[str, Any]) -> None:
    choice = asl["States"]["MissingDependencies"]["Choices"][0]["And"]
    bounds = [c["NumericLessThan"] for c in choice if c.get("Variable") == "$.round.n" and "NumericLessThan" in c]
    assert bounds == [models.MAX_DEPENDENCY_ROUNDS]
    assert Settings(BUCKET_NAME="b").max_dependency_rounds == models.MAX_DEPENDENCY_ROUNDS  # what `plan` follows


def test_registration_learns_how_the_dependency_loop_ended(asl: dict[str, Any]) -> None:
    params = asl["States"]["RegisterPacks"]["Parameters"]
    assert params["dependency_rounds.$"] == "$.round.n"
    assert params["missing_dependency_count.$"] == "$.deps.missing_count"


def test_environment_builds_wait_for_a_task_token(asl: dict[str, Any]) -> None:
    build = asl["States"]["BuildEnvironments"]["ItemProcessor"]["States"]["BuildPackEnvironment"]
    assert build["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert build["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert build["TimeoutSeconds"] > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"packs": ["  "]},
        {"packs": ["core_utils"], "python_version": "3"},
        {"packs": ["core_utils"], "nodejs_version": "twenty"},
    ],
)
def test_an_installation_the_first_stages_would_refuse_is_refused_before_it_starts(bad: dict[str, Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        models.InstallRequest.model_validate(bad)
