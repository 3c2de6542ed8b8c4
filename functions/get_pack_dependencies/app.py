"""Dependencies stage: pack dependencies (installed or missing), install order, runtime needs."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import DependenciesRequest, DependenciesResponse
from attune_packs.services.dependencies import analyze_dependencies


@stage_handler(DependenciesRequest)
def lambda_handler(request: DependenciesRequest, context: Any) -> DependenciesResponse:
    return analyze_dependencies(request, wiring.object_store(), wiring.pack_table(), wiring.settings())
