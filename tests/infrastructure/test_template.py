"""template.yaml is valid, transforms offline, wires real handlers and grants least privilege."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attune_cli.template import StackResources
from attune_packs.services.stages.register import write as register_write

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack() -> StackResources:
    return StackResources.load(ROOT)


@pytest.mark.slow
def test_cfn_lint_finds_nothing() -> None:
    result = subprocess.run([str(BIN / "cfn-lint"), str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_statelint_accepts_the_state_machine_as_deployed(stack: StackResources, tmp_path: Path) -> None:
    # What AWS receives is the definition after DefinitionSubstitutions: lint that.
    _, asl_path, substitutions = stack.state_machine()
    definition = asl_path.read_text()
    for key in substitutions:
        definition = definition.replace("${" + key + "}", f"arn:aws:lambda:us-east-1:123456789012:function:{key}")
    deployed = tmp_path / "install_packs.json"
    deployed.write_text(definition)
    result = subprocess.run([str(BIN / "statelint"), str(deployed)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sam_transform_succeeds_offline(synthesized: dict[str, Any]) -> None:
    output = synthesized  # tests/infrastructure/conftest.py: `sam package` then the transform
    kinds = {r["Type"] for r in output["Resources"].values()}
    assert {
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::Lambda::LayerVersion",
        "AWS::Events::Rule",
        "AWS::CodeBuild::Project",
    } <= kinds


def test_every_function_handler_resolves_to_a_function_in_a_file(stack: StackResources) -> None:
    for spec in stack.functions():
        module, _, name = spec.handler.rpartition(".")
        path = spec.code_uri / f"{module}.py"
        assert path.is_file(), spec.logical_id
        tree = ast.parse(path.read_text())
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, spec.logical_id


def test_functions_target_a_current_python_on_arm64(stack: StackResources) -> None:
    globals_fn = stack.template["Globals"]["Function"]
    assert globals_fn["Runtime"] in {"python3.12", "python3.13"}
    assert globals_fn["Architectures"] == ["arm64"]


# Only in the policy that exists when builds run in a VPC: EC2 reads and network interfaces that
# CodeBuild needs and that IAM cannot scope to a resource.
UNSCOPED_EC2 = {
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
}


def _policies(props: dict[str, Any]) -> list[Any]:
    """Policies, with both branches of a conditional one (Fn::If) and without AWS::NoValue."""
    found = []
    for policy in props.get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            found.extend(p for p in policy["Fn::If"][1:] if p != {"Ref": "AWS::NoValue"})
        else:
            found.append(policy)
    return found


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    props = resource["Properties"]
    found = []
    for policy in _policies(props):
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            found.extend(policy["PolicyDocument"]["Statement"])
    return found


def test_no_policy_grants_every_action_or_every_resource(stack: StackResources) -> None:
    for logical_id, resource in stack.resources.items():
        if resource["Type"] not in {"AWS::Serverless::Function", "AWS::IAM::Role", "AWS::Serverless::StateMachine"}:
            continue
        for statement in _statements(resource):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(a == "*" or a.endswith(":*") for a in actions), logical_id
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert "*" not in resources or set(actions) <= UNSCOPED_EC2, logical_id
            for resource in resources:
                text = json.dumps(resource)
                # The only ':*' allowed: every execution of this stack's own state machine.
                assert ":*" not in text or text.endswith('-install-packs:*"}'), (logical_id, text)


def test_s3_writes_are_limited_to_the_prefixes_each_function_owns(stack: StackResources) -> None:
    owned = {
        "DownloadPacksFunction": {
            "staging/*",
            "archives/*",
            "reports/installs/*/download.json",
            "reports/installs/*/dependency-download-*",
        },
        "GetPackDependenciesFunction": {"reports/installs/*/dependencies-*"},
        "BuildPackEnvsFunction": {"reports/installs/*/build-*", "reports/async-builds/*"},
        "RegisterPacksFunction": {"components/*", "manifests/*", "reports/installs/*/register.json"},
        "EnvironmentBuildRole": {"envs/*", "reports/builds/*", "reports/installs/*/build-*"},
        "ServeApiFunction": {
            "staging/*",
            "archives/*",
            "uploads/*",
            "reports/async-builds/*",
            "components/*",
            "manifests/*",
        },
        "ReportBuildResultFunction": {"reports/installs/*/build-*"},
    }
    for logical_id, prefixes in owned.items():
        written = set()
        for statement in _statements(stack.resources[logical_id]):
            if "s3:PutObject" in statement["Action"]:
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                written |= {r["Fn::Sub"].split("}/", 1)[1] for r in resources}
        assert written == prefixes, logical_id


def _granted(resource: dict[str, Any], action: str) -> set[str]:
    prefixes = set()
    for statement in _statements(resource):
        if action in statement["Action"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            prefixes |= {r["Fn::Sub"].split("}/", 1)[1] for r in resources if isinstance(r, dict) and "Fn::Sub" in r}
    return prefixes


def test_what_registration_offloads_to_s3_may_be_written_where_it_registers_and_read_where_it_is_shown(
    stack: StackResources,
) -> None:
    # Registration runs in the register stage and, for a rollback beyond retention, in the API.
    offloaded = {f"{prefix}*" for prefix in (register_write.SCHEMA_PREFIX, register_write.MANIFEST_PREFIX)}
    for function in ("RegisterPacksFunction", "ServeApiFunction"):
        assert offloaded <= _granted(stack.resources[function], "s3:PutObject"), function
    # The API shows packs and plans with them read back.
    assert offloaded <= _granted(stack.resources["ServeApiFunction"], "s3:GetObject")


def test_builds_run_in_the_given_vpc_only_when_one_is_given(stack: StackResources) -> None:
    project = stack.resources["EnvironmentBuildProject"]["Properties"]
    condition, in_vpc, otherwise = project["VpcConfig"]["Fn::If"]
    assert condition == "BuildInVpc" and otherwise == {"Ref": "AWS::NoValue"}
    assert in_vpc["Subnets"] == {"Ref": "BuildSubnetIds"}
    assert stack.template["Conditions"]["BuildInVpc"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BuildVpcId"}, ""]}]}
    [vpc_policy] = [
        p["Fn::If"] for p in stack.resources["EnvironmentBuildRole"]["Properties"]["Policies"] if "Fn::If" in p
    ]
    assert vpc_policy[0] == "BuildInVpc" and vpc_policy[2] == {"Ref": "AWS::NoValue"}


def test_the_buildspec_is_the_one_the_build_function_sends() -> None:
    import yaml

    from attune_packs.services.stages.build_envs import buildspec_text

    spec = yaml.safe_load(buildspec_text())
    assert spec["version"] == 0.2
    assert list(spec["phases"]) == ["install", "pre_build", "build", "post_build"]


def test_the_download_function_reads_only_the_registry_index_partition_of_the_table(stack: StackResources) -> None:
    from attune_packs.services.managed_indices import INDICES_PARTITION

    dynamodb = [
        s
        for s in _statements(stack.resources["DownloadPacksFunction"])
        if any(str(a).startswith("dynamodb:") for a in s["Action"])
    ]
    assert [s["Action"] for s in dynamodb] == [["dynamodb:Query"]]
    assert dynamodb[0]["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [INDICES_PARTITION]}}
