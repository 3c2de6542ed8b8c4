"""``s3://bucket/key`` locations: pure vocabulary shared by services and the S3 adapter."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from attune_packs.errors import SourceError


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str
    version_id: str | None = None  # one version of the object (``?versionId=`` in its URI)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Location:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise SourceError(f"{uri!r} is not an s3://bucket/key URI", error_code="SOURCE_URL_INVALID")
    version_id = parse_qs(parsed.query).get("versionId", [None])[0]
    return S3Location(parsed.netloc, key, version_id)
