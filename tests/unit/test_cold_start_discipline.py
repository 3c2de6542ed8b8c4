"""What keeps a handler's cold start small, pinned where it is deterministic: the figures are in
``make bench BENCH=cold_start``; these tests fail when a change undoes one of the means."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

import attune_packs


def _all_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(attune_packs.__path__, "attune_packs.")
        if not info.name.startswith("attune_packs.buildspec")
    ]


def _subclasses(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_model_of_the_layer_defers_building_its_validator_to_its_first_use() -> None:
    for name in _all_modules():
        importlib.import_module(name)
    eager = [
        f"{model.__module__}.{model.__qualname__}"
        for model in _subclasses(BaseModel)
        if model.__module__.startswith("attune_packs")
        # A parametrised generic (RootModel[X]) is pydantic's own class, named with brackets.
        and "[" not in model.__qualname__
        and not model.model_config.get("defer_build")
    ]
    assert eager == []


# Distributions the layer pins, and the module each provides.
_PROVIDES = {
    "boto3": "boto3",
    "botocore": "botocore",
    "aws-lambda-powertools": "aws_lambda_powertools",
    "aws-xray-sdk": "aws_xray_sdk",
    "pydantic": "pydantic",
    "pyyaml": "yaml",
    "resolvelib": "resolvelib",
    "packaging": "packaging",
    "dulwich": "dulwich",
}
# Needed though the code never names it: powertools' Tracer imports it on Lambda.
_USED_INDIRECTLY = {"aws-xray-sdk"}


def _layer_requirements() -> list[str]:
    lines = (Path(attune_packs.__file__).parents[1] / "requirements.txt").read_text().splitlines()
    return [line.split("==")[0].strip().lower() for line in lines if line.strip() and not line.startswith("#")]


def test_the_layer_ships_only_dependencies_its_code_imports() -> None:
    code = "\n".join(p.read_text() for p in Path(attune_packs.__file__).parent.rglob("*.py"))
    requirements = _layer_requirements()
    assert set(requirements) <= set(_PROVIDES), f"say which module {set(requirements) - set(_PROVIDES)} provides"
    unused = [
        r
        for r in requirements
        if r not in _USED_INDIRECTLY and not re.search(rf"^\s*(import|from) {_PROVIDES[r]}\b", code, re.MULTILINE)
    ]
    assert unused == []
