"""What keeps a handler's cold start small, pinned where it is deterministic: the figures are in
``make bench BENCH=cold_start``; these tests fail when a change undoes one of the means."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

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
