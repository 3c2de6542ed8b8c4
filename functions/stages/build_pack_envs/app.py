"""Build-environments stage.

Three entry shapes: a Map item of the state machine (``task_token`` + ``pack_path``: answer the
token from the cache or start a CodeBuild build that answers it), or a direct stage request
(``pack_paths``: look up, build, wait, report), or that same request sent asynchronously by
the HTTP API (``async_build`` + ``installation_id``: the report goes to S3 for the status route).
"""

from typing import Any

from attune_packs import wiring
from attune_packs.adapters.logs import log_reader
from attune_packs.edge import parse_request
from attune_packs.models import BuildEnvsRequest, BuildEnvsResponse, BuildTask
from attune_packs.observability import count_environment_lookups, count_pack_failures, observed
from attune_packs.services.installations import record_async_build
from attune_packs.services.stages.build_envs import build_pack_envs, handle_build_task
from attune_packs.settings import BuildPackEnvsSettings


def _counted(response: BuildEnvsResponse) -> BuildEnvsResponse:
    summary = response.summary
    count_environment_lookups(summary.cache_hits, summary.python_envs_built + summary.nodejs_envs_built)
    count_pack_failures("build", response.failed_environments)
    return response


@observed
@wiring.configured(BuildPackEnvsSettings)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = wiring.settings()
    if "task_token" in event:
        task = parse_request(BuildTask, event)
        answer = handle_build_task(
            task,
            store=wiring.object_store(),
            starter=wiring.build_starter(),
            tokens=wiring.task_tokens(),
            architecture=settings.target_architecture,
        )
        cached = answer.get("status") == "cached"
        count_environment_lookups(int(cached), int(not cached))
        return answer
    if "async_build" in event:
        installation_id = str(event.get("installation_id", ""))
        request = parse_request(BuildEnvsRequest, event["async_build"])
        result = _counted(
            build_pack_envs(
                request,
                store=wiring.object_store(),
                starter=wiring.build_starter(),
                architecture=settings.target_architecture,
                logs=log_reader(),
            )
        ).model_dump(mode="json")
        record_async_build(installation_id, wiring.object_store(), "SUCCEEDED", result)
        return {"installation_id": installation_id, "status": "SUCCEEDED"}
    request = parse_request(BuildEnvsRequest, event)
    return _counted(
        build_pack_envs(
            request,
            store=wiring.object_store(),
            starter=wiring.build_starter(),
            architecture=settings.target_architecture,
            logs=log_reader(),
        )
    ).model_dump(mode="json")
