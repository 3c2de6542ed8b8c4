"""Build-environments stage.

Three entry shapes: a Map item of the state machine (``task_token`` + ``pack_path``: answer the
token from the cache or start a CodeBuild build that answers it), or a direct stage request
(``pack_paths``: look up, build, wait, report), or that same request sent asynchronously by
the HTTP API (``async_build`` + ``installation_id``: the report goes to S3 for the status route).
"""

from typing import Any

from attune_packs import wiring
from attune_packs.adapters.logs import log_reader
from attune_packs.edge import logger, parse_request
from attune_packs.models import BuildEnvsRequest, BuildTask
from attune_packs.services.installations import record_async_build
from attune_packs.services.stages.build_envs import build_pack_envs, handle_build_task


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = wiring.settings()
    if "task_token" in event:
        task = parse_request(BuildTask, event)
        return handle_build_task(
            task,
            store=wiring.object_store(),
            starter=wiring.build_starter(),
            tokens=wiring.task_tokens(),
            architecture=settings.target_architecture,
        )
    if "async_build" in event:
        installation_id = str(event.get("installation_id", ""))
        request = parse_request(BuildEnvsRequest, event["async_build"])
        result = build_pack_envs(
            request,
            store=wiring.object_store(),
            starter=wiring.build_starter(),
            architecture=settings.target_architecture,
            logs=log_reader(),
        ).model_dump(mode="json")
        record_async_build(installation_id, wiring.object_store(), "SUCCEEDED", result)
        return {"installation_id": installation_id, "status": "SUCCEEDED"}
    request = parse_request(BuildEnvsRequest, event)
    return build_pack_envs(
        request,
        store=wiring.object_store(),
        starter=wiring.build_starter(),
        architecture=settings.target_architecture,
        logs=log_reader(),
    ).model_dump(mode="json")
