"""EventBridge target for CodeBuild build-state changes: fail the task token of a build that
failed, timed out or was stopped before its buildspec could answer it, with the last lines of the
build's CloudWatch log."""

from typing import Any

from attune_packs import wiring
from attune_packs.adapters.logs import log_reader
from attune_packs.edge import parse_request
from attune_packs.observability import count_by, observed
from attune_packs.services.build_reports import BuildStateDetail, report_build_state
from attune_packs.settings import ReportBuildResultSettings


@observed
@wiring.configured(ReportBuildResultSettings)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = parse_request(BuildStateDetail, event.get("detail") or {})
    count_by("BuildsEndedEarly", {"build_status": str(detail.build_status)})
    return report_build_state(detail, wiring.task_tokens(), logs=log_reader(), store=wiring.object_store())
