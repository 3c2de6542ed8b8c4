"""EventBridge target for CodeBuild build-state changes: fail the task token of a build that
failed, timed out or was stopped before its buildspec could answer it, with the last lines of the
build's CloudWatch log."""

from typing import Any

from attune_packs import wiring
from attune_packs.adapters.logs import log_reader
from attune_packs.edge import logger, parse_request
from attune_packs.services.build_reports import BuildStateDetail, report_build_state


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = parse_request(BuildStateDetail, event.get("detail") or {})
    return report_build_state(detail, wiring.task_tokens(), logs=log_reader(), store=wiring.object_store())
