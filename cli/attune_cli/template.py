"""Reading template.yaml: the one source of resource names, keys, indexes and function wiring.

The local stack and the tests build their resources from what this returns, so the template
cannot drift from what runs locally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


@dataclass
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]
    timeout: int
    events: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackResources:
    root: Path
    template: dict[str, Any]

    @classmethod
    def load(cls, root: Path) -> StackResources:
        return cls(root, load_template(root / "template.yaml"))

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template["Resources"])

    def parameter_defaults(self) -> dict[str, str]:
        """Every template parameter's default, as ``sam deploy`` would use it without overrides."""
        return {
            name: str(spec["Default"])
            for name, spec in (self.template.get("Parameters") or {}).items()
            if "Default" in spec
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def single(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(resource_type)
        if len(found) != 1:
            raise ValueError(f"expected one {resource_type} in template.yaml, found {sorted(found)}")
        return next(iter(found.items()))

    def functions(self) -> list[FunctionSpec]:
        globals_fn = self.template.get("Globals", {}).get("Function", {})
        global_env = globals_fn.get("Environment", {}).get("Variables", {})
        specs = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
            specs.append(
                FunctionSpec(
                    logical_id=logical_id,
                    code_uri=self.root / props["CodeUri"],
                    handler=props.get("Handler", globals_fn.get("Handler", "app.lambda_handler")),
                    environment=env,
                    timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
                    events=props.get("Events", {}),
                )
            )
        return specs

    def table_definition(self) -> tuple[str, dict[str, Any]]:
        """Logical id and the CreateTable arguments (keys, attributes, GSIs) of the one table."""
        logical_id, resource = self.single("AWS::DynamoDB::Table")
        props = resource["Properties"]
        args: dict[str, Any] = {
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        return logical_id, args

    def state_machine(self) -> tuple[str, Path, dict[str, Any]]:
        logical_id, resource = self.single("AWS::Serverless::StateMachine")
        props = resource["Properties"]
        return logical_id, self.root / props["DefinitionUri"], props.get("DefinitionSubstitutions", {})


class Resolver:
    """Resolves Ref / GetAtt / Sub against local names and parameter values."""

    def __init__(self, names: dict[str, str], arns: dict[str, str], parameters: dict[str, str]) -> None:
        self.names, self.arns, self.parameters = names, arns, parameters

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str | int | float | bool):
            return str(value) if not isinstance(value, str) else value
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            if ref in self.names:
                return self.names[ref]
            if ref in self.parameters:
                return self.parameters[ref]
            raise KeyError(f"template.yaml refers to {ref!r}, which the local stack does not create")
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if attribute == "Arn" and logical_id in self.arns:
                return self.arns[logical_id]
            raise KeyError(f"GetAtt {logical_id}.{attribute} is not available in the local stack")
        if isinstance(value, dict) and "Fn::Sub" in value:
            template = value["Fn::Sub"]

            def substitute(match: re.Match[str]) -> str:
                token = match.group(1)
                if "." in token:
                    return str(self({"Fn::GetAtt": token.split(".", 1)}))
                if token.startswith("AWS::"):
                    return {
                        "AWS::Region": "us-east-1",
                        "AWS::AccountId": "123456789012",
                        "AWS::Partition": "aws",
                        "AWS::StackName": "attune-local",
                    }[token]
                return str(self({"Ref": token}))

            return re.sub(r"\$\{([^}]+)\}", substitute, template)
        raise ValueError(f"cannot resolve {value!r} locally")
