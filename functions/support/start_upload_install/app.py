"""EventBridge target for S3 "Object Created" under uploads/: install the uploaded archive, one
installation per object version (duplicate deliveries start one; see services/uploads.py)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from attune_packs import wiring
from attune_packs.observability import count, observed
from attune_packs.services.uploads import handle_object_created
from attune_packs.settings import StartUploadInstallSettings


@observed
@wiring.configured(StartUploadInstallSettings)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    parsed = parse(event=event, model=S3EventNotificationEventBridgeModel)
    started = handle_object_created(parsed, wiring.executions())
    count("InstallationsStarted", int(bool(started.get("started"))))
    return started
