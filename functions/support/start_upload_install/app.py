"""EventBridge target for S3 "Object Created" under uploads/: install the uploaded archive, one
installation per object version (duplicate deliveries start one; see services/uploads.py)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from attune_packs import wiring
from attune_packs.edge import logger
from attune_packs.services.uploads import handle_object_created


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    parsed = parse(event=event, model=S3EventNotificationEventBridgeModel)
    return handle_object_created(parsed, wiring.executions())
