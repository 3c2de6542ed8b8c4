"""S3 uploads under uploads/ start an installation of the uploaded archive, one per object version.

An upload is identified by its bucket, key and *object version*: the S3 version id when the bucket
keeps versions, else the ETag and the event's sequencer (S3 orders the events of one key by it). The
installation's source names that version (``?versionId=`` is honoured by the S3 adapter, so the
installation reads the uploaded bytes even if the key was overwritten since; without versioning,
``?etag=…&sequencer=…`` only tells uploads apart). So:

* the first upload to a key is installed under the name derived from bucket and key alone (the
  name ``POST /packs/uploads`` and the CLI announce before the upload);
* a duplicate delivery of the same event (EventBridge delivers at least once) starts nothing: the
  same name with the same request is the same execution;
* a new upload to the same key is another request under that name, which Step Functions refuses,
  so it is installed under a name derived from bucket, key and object version.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from attune_packs.adapters.stepfunctions import Executions
from attune_packs.errors import IdempotencyMismatchError
from attune_packs.models import InstallRequest
from attune_packs.services.installations import installation_name

UPLOAD_PREFIX = "uploads/"
UPLOAD_SUFFIXES = (".tar.gz", ".tgz", ".zip")


def object_version(version_id: str | None, etag: str | None, sequencer: str | None) -> str:
    """What tells two uploads to one key apart, as a URI query: the version id, else ETag and sequencer."""
    if version_id and version_id != "null":  # "null": an object written before versioning was enabled
        return urlencode({"versionId": version_id})
    return urlencode({"etag": (etag or "").strip('"'), "sequencer": sequencer or ""})


def upload_installation_name(bucket: str, key: str, version: str | None = None) -> str:
    """The first upload of a key: bucket and key; any later one: its object version too."""
    return (
        installation_name("upload", bucket, key)
        if version is None
        else installation_name("upload", bucket, key, version)
    )


def start_upload_installation(
    bucket: str, key: str, executions: Executions, *, version_id: str | None, etag: str | None, sequencer: str | None
) -> dict[str, Any]:
    if not key.startswith(UPLOAD_PREFIX) or not key.endswith(UPLOAD_SUFFIXES):
        return {"started": False, "reason": f"s3://{bucket}/{key} is not an archive under {UPLOAD_PREFIX}"}
    version = object_version(version_id, etag, sequencer)
    source = f"s3://{bucket}/{key}?{version}"
    request = InstallRequest(packs=[source], started_by=f"s3://{bucket}/{key}").model_dump(mode="json")
    name = upload_installation_name(bucket, key)
    try:
        arn, created = executions.start(name, request)
    except IdempotencyMismatchError:  # the key's first upload was another version
        name = upload_installation_name(bucket, key, version)
        arn, created = executions.start(name, request)
    return {"started": created, "installation_id": name, "execution_arn": arn, "source": source}


def handle_object_created(event: S3EventNotificationEventBridgeModel, executions: Executions) -> dict[str, Any]:
    # EventBridge delivers the key as stored (S3 notifications to Lambda would URL-encode it).
    detail = event.detail
    uploaded = detail.object
    return start_upload_installation(
        detail.bucket.name,
        uploaded.key,
        executions,
        version_id=uploaded.version_id,
        etag=uploaded.etag,
        sequencer=uploaded.sequencer,
    )
