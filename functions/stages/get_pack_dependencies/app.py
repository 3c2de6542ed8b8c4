"""Dependencies stage: pack dependencies (installed or missing), install order, runtime needs."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import DependenciesRequest
from attune_packs.observability import count, count_pack_failures, observed
from attune_packs.services.reports import answer
from attune_packs.services.stages.dependencies import analyze_dependencies
from attune_packs.settings import GetPackDependenciesSettings


@observed
@wiring.configured(GetPackDependenciesSettings)
@stage_handler(DependenciesRequest)
def lambda_handler(request: DependenciesRequest, context: Any) -> dict[str, Any]:
    store = wiring.object_store()
    response = analyze_dependencies(request, store, wiring.pack_table(), wiring.settings())
    count("DependencyConflicts", len(response.conflicts))
    count_pack_failures("dependencies", response.errors)
    return answer(response, request, store)
