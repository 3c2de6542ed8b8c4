"""S3 uploads under uploads/ start an installation of the uploaded archive."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from attune_packs.adapters.stepfunctions import Executions
from attune_packs.services.installations import start_upload_installation


def handle_object_created(event: S3EventNotificationEventBridgeModel, executions: Executions) -> dict[str, Any]:
    # EventBridge delivers the key as stored (S3 notifications to Lambda would URL-encode it).
    detail = event.detail
    return start_upload_installation(detail.bucket.name, detail.object.key, executions)
