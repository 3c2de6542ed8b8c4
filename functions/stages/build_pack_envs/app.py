"""Build-environments stage.

Three entry shapes, one typed event (``BuildPackEnvsEvent``): a Map item of the state machine
(``task_token`` + ``pack_path``: answer the token from the cache or start a CodeBuild build that
answers it), a direct stage request (``pack_paths``: look up, build, wait, report), or that same
request sent asynchronously by the HTTP API (``async_build`` + ``installation_id``: the report goes
to S3 for the status route).
"""

from typing import Any

from attune_packs import wiring
from attune_packs.adapters.logs import log_reader
from attune_packs.edge import stage_handler
from attune_packs.models import BuildPackEnvsEvent
from attune_packs.observability import count_build_answer, observed
from attune_packs.services.stages.build_envs import BuildServices, handle_build_event
from attune_packs.services.stages.npm_sources import NpmSourcePolicy
from attune_packs.settings import BuildPackEnvsSettings


@observed
@wiring.configured(BuildPackEnvsSettings)
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
    return count_build_answer(handle_build_event(event, services))
