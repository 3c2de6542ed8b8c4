"""Register stage: record each pack and its components in DynamoDB, atomically per pack."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import RegisterRequest
from attune_packs.services.reports import answer
from attune_packs.services.stages.register import RegistryPolicy, register_packs


@stage_handler(RegisterRequest)
def lambda_handler(request: RegisterRequest, context: Any) -> dict[str, Any]:
    store = wiring.object_store()
    policy = RegistryPolicy(keep_versions=wiring.settings().keep_versions)
    return answer(register_packs(request, store=store, table=wiring.pack_table(), policy=policy), request, store)
