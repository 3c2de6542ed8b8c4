"""Installations: start one (JSON, or an archive uploaded multipart as Attune's web UI does), follow
it, or get a presigned form to upload a large archive directly to S3."""

from __future__ import annotations

import re
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from attune_packs import wiring
from attune_packs.api.app import PREFIX, app, body_bytes, data, header, principal
from attune_packs.api.bounds import MAX_MULTIPART_BYTES
from attune_packs.api.openapi import responses
from attune_packs.errors import InvalidRequestError
from attune_packs.models import MAX_PACKS_PER_INSTALLATION, InstallRequest
from attune_packs.services import installations

MAX_UPLOAD_BYTES = 512 * 2**20
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
# Archives posted to /packs/upload wait here for the download stage (which checks and stores them
# content-addressed); not under uploads/, whose objects start installations of their own.
API_UPLOAD_PREFIX = "staging/api-uploads/"


class InstallBody(InstallRequest):
    """``packs[]`` or a single ``source`` (Attune's InstallPackRequest: source, ref_spec, skip_tests,
    skip_deps); the rest as the state machine takes it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    packs: list[str] = Field(default_factory=list, max_length=MAX_PACKS_PER_INSTALLATION)
    source: str | None = Field(default=None, max_length=2048, description="Attune's single source")
    skip_deps: bool | None = Field(default=None, description="Attune's name for skip_dependencies")
    started_by: SkipJsonSchema[str | None] = None
    lock: dict[str, Any] | None = Field(
        default=None, description="a lockfile (docs/lockfile.md): install exactly it, or LOCK_MISMATCH (409)"
    )

    @model_validator(mode="after")
    def _stages_accept_it(self) -> InstallBody:
        return self  # checked on the InstallRequest made of packs[] and source


class InstallStarted(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    installation_id: str
    execution_arn: str
    created: bool = Field(description="false: the same Idempotency-Key already started this installation")
    started_by: str = Field(description="the authenticated principal that started it")
    status_url: str
    size_bytes: int | None = Field(default=None, description="POST /packs/upload: the archive's size")


def _start(request: InstallRequest) -> dict[str, Any]:
    key = header(app.current_event.raw_event, "idempotency-key") or None
    started = installations.start_installation(
        request, wiring.executions(), started_by=principal(), idempotency_key=key
    )
    return {**started, "status_url": f"{PREFIX}/packs/installs/{started['installation_id']}"}


@app.post(f"{PREFIX}/packs/install", responses=responses(202, InstallStarted, "the installation started"))
def install(body: InstallBody) -> Response[Any]:
    if body.started_by is not None:
        raise InvalidRequestError(
            "started_by is set by the installer (the authenticated principal); put a label in client_label",
            details=[{"field": "started_by", "problem": "set by the installer"}],
        )
    from attune_packs.api.plan_routes import install_request

    return data(_start(install_request(body)), status=202)


class InstallationStatus(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    installation_id: str
    status: str = Field(
        description="RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED; UNKNOWN once the execution's history is gone "
        "(then result holds what the stages reported)"
    )
    history_available: bool = Field(
        default=True, description="false past the execution's history (90 days on AWS, a restart of the local stack)"
    )
    current_stage: str | None = None
    result: Any = None


@app.get(
    f"{PREFIX}/packs/installs/<installation_id>",
    responses=responses(200, InstallationStatus, "state, stage transitions and, once finished, the stage reports"),
)
def installation(installation_id: str) -> Response[Any]:
    if installation_id.startswith("build-"):
        return data(installations.async_build_status(installation_id, wiring.object_store()))
    from attune_packs.services.lockfile import installation_lock

    status = installations.installation_status(installation_id, wiring.executions(), wiring.object_store())
    status["lock"] = installation_lock(
        installation_id, status, wiring.object_store(), wiring.pack_table(), wiring.settings()
    )
    status["lock_url"] = f"{PREFIX}/packs/installs/{installation_id}/lock" if status["lock"] else None
    return data(status)


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(default="application/gzip", max_length=100)


class PresignedUpload(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    upload: dict[str, Any] = Field(description="url and fields of a browser-style POST form to S3")
    key: str
    max_bytes: int
    installation_id: str = Field(description="the installation the uploaded object starts")


def _archive_name(filename: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", filename.replace("\\", "/").rsplit("/", 1)[-1])
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise InvalidRequestError(
            "upload a .tar.gz, .tgz or .zip archive",
            details=[{"field": "filename", "problem": "unsupported extension"}],
        )
    return name


@app.post(f"{PREFIX}/packs/uploads", responses=responses(201, PresignedUpload, "a form to upload the archive with"))
def create_upload(body: UploadBody) -> Response[Any]:
    store = wiring.object_store()
    key = f"uploads/{uuid.uuid4().hex}/{_archive_name(body.filename)}"
    form = store.presigned_post(key, max_bytes=MAX_UPLOAD_BYTES, content_type=body.content_type)
    return data(
        {
            "upload": form,
            "key": key,
            "max_bytes": MAX_UPLOAD_BYTES,
            "installation_id": installations.upload_installation_name(store.bucket, key),
        },
        status=201,
    )


class MultipartForm(BaseModel):
    """What Attune's upload form carries: the archive in ``pack`` and two flags."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    filename: str
    content: bytes
    force: bool = False
    skip_tests: bool = False


_TRUE = {"true", "1", "yes", "on"}


def parse_upload_form(content_type: str, body: bytes) -> MultipartForm:
    """The ``pack`` file part (``file`` is accepted too) and the ``force`` / ``skip_tests`` fields;
    other fields are ignored, as Attune does."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise InvalidRequestError("the body is not a multipart/form-data form", error_code="INVALID_MULTIPART")
    archive: tuple[str, bytes] | None = None
    flags: dict[str, bool] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        if name in ("pack", "file") and archive is None:
            archive = (str(part.get_filename() or "pack.tar.gz"), payload)
        elif name in ("force", "skip_tests"):
            flags[str(name)] = payload.decode("utf-8", "replace").strip().lower() in _TRUE
    if archive is None:
        raise InvalidRequestError(
            "the form has no 'pack' file field (the archive)",
            error_code="INVALID_MULTIPART",
            details=[{"field": "pack", "problem": "missing"}],
        )
    return MultipartForm(filename=archive[0], content=archive[1], **flags)


@app.post(
    f"{PREFIX}/packs/upload",
    responses=responses(202, InstallStarted, "the archive is stored and its installation started"),
    openapi_extensions={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["pack"],
                        "properties": {
                            "pack": {"type": "string", "format": "binary", "description": "the archive"},
                            "force": {"type": "string", "enum": ["true", "false"]},
                            "skip_tests": {"type": "string", "enum": ["true", "false"]},
                        },
                    }
                }
            },
            "description": f"at most {MAX_MULTIPART_BYTES} bytes; larger archives: POST {PREFIX}/packs/uploads",
        }
    },
)
def upload() -> Response[Any]:
    event = app.current_event.raw_event
    form = parse_upload_form(header(event, "content-type"), body_bytes(event))
    if not form.content:
        raise InvalidRequestError("the uploaded archive is empty", details=[{"field": "pack", "problem": "empty"}])
    store = wiring.object_store()
    key = f"{API_UPLOAD_PREFIX}{uuid.uuid4().hex}/{_archive_name(form.filename)}"
    store.put_bytes(key, form.content, "application/octet-stream")
    request = InstallRequest(packs=[f"s3://{store.bucket}/{key}"], force=form.force, skip_tests=form.skip_tests)
    return data({**_start(request), "size_bytes": len(form.content)}, status=202)
