"""Register stage: record each pack and its components in DynamoDB, atomically per pack."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import RegisterRequest
from attune_packs.observability import count, count_pack_failures, observed
from attune_packs.services.reports import answer
from attune_packs.services.stages.register import RegistryPolicy, register_packs
from attune_packs.settings import RegisterPacksSettings


@observed
@wiring.configured(RegisterPacksSettings)
@stage_handler(RegisterRequest)
def lambda_handler(request: RegisterRequest, context: Any) -> dict[str, Any]:
    store = wiring.object_store()
    policy = RegistryPolicy(keep_versions=wiring.settings().keep_versions)
    response = register_packs(request, store=store, table=wiring.pack_table(), policy=policy)
    registered = [pack for pack in response.registered_packs if pack.status == "registered"]
    count("PacksRegistered", len(registered))
    # Per new registration: its version item, one item per component, then the CURRENT flip.
    count("RegistrationItemsWritten", sum(sum(p.components_registered.values()) + 2 for p in registered))
    count_pack_failures("register", response.failed_packs)
    return answer(response, request, store)
