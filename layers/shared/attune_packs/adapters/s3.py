"""Object storage adapter: streamed, hashed uploads and streamed reads.

``s3://`` locations (:class:`S3Location`, :func:`parse_s3_uri`) are pure vocabulary kept in
:mod:`attune_packs.s3_uri`; they are re-exported here for the callers that already import them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast

from attune_packs.errors import SourceError, SourceGoneError, ThrottledError, TransientError

# Re-exported: the location vocabulary lives in attune_packs.s3_uri; services that receive an
# ObjectStore still find it here.
from attune_packs.s3_uri import S3Location as S3Location
from attune_packs.s3_uri import parse_s3_uri as parse_s3_uri

PART_SIZE = 8 * 2**20  # S3 multipart parts (min 5 MiB); memory stays at about one part
_THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"}
# A conditional write (If-None-Match: *) refused because an object is at the key (412), or because
# another conditional write of that key is in progress (409): either way this call wrote nothing.
_EXISTS_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class StoredObject:
    location: S3Location
    sha256: str
    size: int
    created: bool = True  # False: ``if_absent`` and an object was already at the key (nothing written)


class ObjectStore(Protocol):
    bucket: str

    def upload_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        max_bytes: int,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
    ) -> StoredObject: ...
    def head(self, location: S3Location) -> dict[str, Any] | None: ...
    def open(self, location: S3Location) -> BinaryIO: ...
    def copy(self, src: S3Location, dst_key: str, metadata: dict[str, str] | None = None) -> None: ...
    def delete(self, key: str) -> None: ...
    def put_bytes(self, key: str, body: bytes, content_type: str = ...) -> None: ...
    def get_json(self, location: S3Location, max_bytes: int = ...) -> Any: ...


def _is_throttle(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in _THROTTLE_CODES


def _refused_as_existing(exc: Exception) -> bool:
    """Whether S3 refused a conditional write because of an object at (or being written to) its key."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code") in _EXISTS_CODES


def _retriable(exc: Exception, doing: str) -> TransientError:
    """A failed S3 call (``doing``: "a read of s3://…") as the error the state machine retries."""
    if _is_throttle(exc):
        return ThrottledError(f"S3 throttled {doing}")
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") or str(exc)
    return TransientError(f"{doing} failed: {code}")


class _Streamed:
    """An object's body whose read failing midway (a reset connection, a broken stream) is a
    ``TransientError``, as a failed call is, rather than an exception no caller expects."""

    def __init__(self, body: Any, uri: str) -> None:
        self._body, self._uri = body, uri

    def read(self, amt: int | None = None) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return bytes(self._body.read(amt))
        except (BotoCoreError, OSError) as exc:
            raise TransientError(f"a read of {self._uri} broke off: {exc}") from exc

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Streamed:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


class S3ObjectStore:
    """The bucket of this installation, through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket

    def upload_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        max_bytes: int,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
    ) -> StoredObject:
        """Stream ``stream`` to ``key`` in parts while hashing it; never holds more than one part.

        ``if_absent``: a conditional write (``If-None-Match: *`` on the PUT, or on completing the
        multipart upload) that S3 refuses when an object is already at ``key``: the whole stream is
        still read and hashed, nothing is written, and the answer says ``created=False``."""
        digest = hashlib.sha256()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        meta = metadata or {}
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            for chunk in _chunks(stream, PART_SIZE):
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(
                        f"the archive is larger than the {max_bytes // 2**20} MiB limit",
                        error_code="DOWNLOAD_TOO_LARGE",
                    )
                digest.update(chunk)
                if upload_id is None and len(chunk) < PART_SIZE:
                    # Small object: one PUT, no multipart bookkeeping.
                    created = self._put(key, chunk, meta, condition)
                    return StoredObject(S3Location(self.bucket, key), digest.hexdigest(), size, created)
                if upload_id is None:
                    upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=meta)["UploadId"]
                number = len(parts) + 1
                etag = self._s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
            if upload_id is None:  # empty stream
                created = self._put(key, b"", meta, condition)
            else:
                created = self._complete(key, upload_id, parts, condition)
        except BaseException:
            if upload_id is not None:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        if upload_id is not None and not created:  # refused: its parts are not kept
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        return StoredObject(S3Location(self.bucket, key), digest.hexdigest(), size, created)

    def _put(self, key: str, body: bytes, metadata: dict[str, str], condition: dict[str, str]) -> bool:
        """One PUT; False when its condition found an object at the key (nothing written)."""
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata, **condition)
        except ClientError as exc:
            if condition and _refused_as_existing(exc):
                return False
            raise
        return True

    def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]], condition: dict[str, str]) -> bool:
        """Complete a multipart upload; False when its condition found an object at the key."""
        from botocore.exceptions import ClientError

        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **condition
            )
        except ClientError as exc:
            if condition and _refused_as_existing(exc):
                return False
            raise
        return True

    def head(self, location: S3Location) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(self._s3.head_object(Bucket=location.bucket, Key=location.key))
        except (ClientError, BotoCoreError) as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise _retriable(exc, f"a read of {location.uri}") from exc

    def open(self, location: S3Location) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            version = {"VersionId": location.version_id} if location.version_id else {}
            body = self._s3.get_object(Bucket=location.bucket, Key=location.key, **version)["Body"]
            return cast(BinaryIO, _Streamed(body, location.uri))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise SourceGoneError(f"{location.uri} no longer exists; download the pack again") from exc
            if code in {"AccessDenied", "403", "NoSuchBucket"}:
                raise SourceError(f"{location.uri} cannot be read ({code})", error_code="SOURCE_FORBIDDEN") from exc
            raise _retriable(exc, f"a read of {location.uri}") from exc

    def copy(self, src: S3Location, dst_key: str, metadata: dict[str, str] | None = None) -> None:
        extra: dict[str, Any] = {}
        if metadata is not None:
            extra = {"Metadata": metadata, "MetadataDirective": "REPLACE"}
        self._s3.copy({"Bucket": src.bucket, "Key": src.key}, self.bucket, dst_key, ExtraArgs=extra or None)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """A failed write is retriable: every caller writes the same bytes again on a retry."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise _retriable(exc, f"a write of s3://{self.bucket}/{key}") from exc

    def get_json(self, location: S3Location, max_bytes: int = 4 * 2**20) -> Any:
        with self.open(location) as body:
            content = body.read(max_bytes + 1)
        if len(content) > max_bytes:
            raise ValueError(f"{location.uri} is larger than {max_bytes} bytes")
        return json.loads(content)

    def presigned_post(self, key: str, *, max_bytes: int, content_type: str, expires: int = 900) -> dict[str, Any]:
        """A browser-style POST form that lets a client upload ``key`` directly, within limits."""
        return dict(
            self._s3.generate_presigned_post(
                Bucket=self.bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[["content-length-range", 1, max_bytes], {"Content-Type": content_type}],
                ExpiresIn=expires,
            )
        )


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Yield exactly ``size``-byte chunks (the last may be shorter) from a stream of any read sizes."""
    buffer = bytearray()
    while True:
        data = stream.read(size - len(buffer))
        if not data:
            break
        buffer += data
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)
