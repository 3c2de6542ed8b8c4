"""Build-environments stage: a Map item of the state machine, a direct stage request, or that
request sent asynchronously by the HTTP API (see ``BuildPackEnvsEvent``)."""

from typing import Any

from attune_packs import wiring
from attune_packs.adapters.logs import log_reader
from attune_packs.edge import stage_handler
from attune_packs.models import BuildPackEnvsEvent
from attune_packs.services.stages.build_envs import BuildServices, handle_build_event
from attune_packs.services.stages.npm_sources import NpmSourcePolicy


@stage_handler(BuildPackEnvsEvent)
def lambda_handler(event: BuildPackEnvsEvent, context: Any) -> dict[str, Any]:
    settings = wiring.settings()
    services = BuildServices(
        store=wiring.object_store(),
        starter=wiring.build_starter(),
        tokens=wiring.task_tokens(),
        logs=log_reader(),
        architecture=settings.target_architecture,
        npm=NpmSourcePolicy.configured(settings.npm_registry_hosts, settings.download_allow_networks),
    )
    return handle_build_event(event, services)
