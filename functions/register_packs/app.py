"""Register stage: record each pack and its components in DynamoDB, atomically per pack."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import RegisterRequest, RegisterResponse
from attune_packs.services.register import RegistryPolicy, register_packs


@stage_handler(RegisterRequest)
def lambda_handler(request: RegisterRequest, context: Any) -> RegisterResponse:
    policy = RegistryPolicy(keep_versions=wiring.settings().keep_versions)
    return register_packs(request, store=wiring.object_store(), table=wiring.pack_table(), policy=policy)
