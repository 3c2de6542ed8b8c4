"""``s3://bucket/key`` locations: pure vocabulary shared by services and the S3 adapter."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from attune_packs.errors import SourceError


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Location:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise SourceError(f"{uri!r} is not an s3://bucket/key URI", error_code="SOURCE_URL_INVALID")
    return S3Location(parsed.netloc, key)
