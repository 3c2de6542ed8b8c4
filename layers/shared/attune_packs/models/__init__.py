"""Pydantic contracts of the four stages (DESIGN.md section 3) and of the state machine's items.

Requests ignore nothing silently: unknown fields are refused (``extra="forbid"``) so a typo in a
client is a 400, not a default. Responses are plain data; the state machine passes them between
stages as they are.

One module per stage (``download``, ``dependencies``, ``build``, ``register``), ``install`` for the
state machine's input and ``common`` for what they share. ``from attune_packs.models import X``
loads only the module that defines ``X``: a handler's cold start builds the classes of its own
stage, not those of all four (``benchmarks/cold_start.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attune_packs.models.build import AsyncBuildRequest as AsyncBuildRequest
    from attune_packs.models.build import BuildEnvsRequest as BuildEnvsRequest
    from attune_packs.models.build import BuildEnvsResponse as BuildEnvsResponse
    from attune_packs.models.build import BuildOptions as BuildOptions
    from attune_packs.models.build import BuildReference as BuildReference
    from attune_packs.models.build import BuildSummary as BuildSummary
    from attune_packs.models.build import BuildTask as BuildTask
    from attune_packs.models.build import BuiltEnvironment as BuiltEnvironment
    from attune_packs.models.build import EnvironmentArtifact as EnvironmentArtifact
    from attune_packs.models.build import FailedBuild as FailedBuild
    from attune_packs.models.build_event import BuildEvent as BuildEvent
    from attune_packs.models.build_event import BuildPackEnvsEvent as BuildPackEnvsEvent
    from attune_packs.models.common import COMPONENT_TYPES as COMPONENT_TYPES
    from attune_packs.models.common import MAX_DEPENDENCY_ROUNDS as MAX_DEPENDENCY_ROUNDS
    from attune_packs.models.common import MAX_PACKS_PER_INSTALLATION as MAX_PACKS_PER_INSTALLATION
    from attune_packs.models.common import MAX_RESOLVED_PACKS as MAX_RESOLVED_PACKS
    from attune_packs.models.common import REPORT_KEY_PATTERN as REPORT_KEY_PATTERN
    from attune_packs.models.common import LockPin as LockPin
    from attune_packs.models.common import PackFailure as PackFailure
    from attune_packs.models.common import Reported as Reported
    from attune_packs.models.common import ReportedResponse as ReportedResponse
    from attune_packs.models.common import Request as Request
    from attune_packs.models.common import Response as Response
    from attune_packs.models.dependencies import AnalyzedPack as AnalyzedPack
    from attune_packs.models.dependencies import Conflict as Conflict
    from attune_packs.models.dependencies import DependenciesRequest as DependenciesRequest
    from attune_packs.models.dependencies import DependenciesResponse as DependenciesResponse
    from attune_packs.models.dependencies import Dependency as Dependency
    from attune_packs.models.dependencies import NodeRequirements as NodeRequirements
    from attune_packs.models.dependencies import PythonRequirements as PythonRequirements
    from attune_packs.models.dependencies import Resolution as Resolution
    from attune_packs.models.dependencies import RuntimeRequirements as RuntimeRequirements
    from attune_packs.models.download import DownloadedPack as DownloadedPack
    from attune_packs.models.download import DownloadRequest as DownloadRequest
    from attune_packs.models.download import DownloadResponse as DownloadResponse
    from attune_packs.models.download import SourceType as SourceType
    from attune_packs.models.install import InstallRequest as InstallRequest
    from attune_packs.models.register import RegisteredPack as RegisteredPack
    from attune_packs.models.register import RegisterRequest as RegisterRequest
    from attune_packs.models.register import RegisterResponse as RegisterResponse
    from attune_packs.models.register import RegisterSummary as RegisterSummary
    from attune_packs.models.register import RemovedPack as RemovedPack
    from attune_packs.models.register import RolledBackPack as RolledBackPack

_HOME = {
    # common
    "COMPONENT_TYPES": "common",
    "LockPin": "common",
    "MAX_DEPENDENCY_ROUNDS": "common",
    "MAX_PACKS_PER_INSTALLATION": "common",
    "MAX_RESOLVED_PACKS": "common",
    "PackFailure": "common",
    "REPORT_KEY_PATTERN": "common",
    "Reported": "common",
    "ReportedResponse": "common",
    "Request": "common",
    "Response": "common",
    # download
    "DownloadRequest": "download",
    "DownloadResponse": "download",
    "DownloadedPack": "download",
    "SourceType": "download",
    # dependencies
    "AnalyzedPack": "dependencies",
    "Conflict": "dependencies",
    "DependenciesRequest": "dependencies",
    "DependenciesResponse": "dependencies",
    "Dependency": "dependencies",
    "NodeRequirements": "dependencies",
    "PythonRequirements": "dependencies",
    "Resolution": "dependencies",
    "RuntimeRequirements": "dependencies",
    # build
    "AsyncBuildRequest": "build",
    "BuildEnvsRequest": "build",
    "BuildEnvsResponse": "build",
    "BuildEvent": "build_event",
    "BuildOptions": "build",
    "BuildPackEnvsEvent": "build_event",
    "BuildReference": "build",
    "BuildSummary": "build",
    "BuildTask": "build",
    "BuiltEnvironment": "build",
    "EnvironmentArtifact": "build",
    "FailedBuild": "build",
    # register
    "RegisterRequest": "register",
    "RegisterResponse": "register",
    "RegisterSummary": "register",
    "RegisteredPack": "register",
    "RemovedPack": "register",
    "RolledBackPack": "register",
    # install
    "InstallRequest": "install",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
