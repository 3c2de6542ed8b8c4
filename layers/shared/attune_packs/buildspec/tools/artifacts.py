"""The content digest of an environment artifact, recorded in its manifest at build time: whoever
finds the environment later (a cache lookup, registration, a test-only build) serves the artifact
only when its bytes still match."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from .common import file_sha256, write_json

if TYPE_CHECKING:
    from typing import Any


def seal_manifest(manifest_path: str, artifact_path: str) -> dict[str, Any]:
    """Record ``artifact_sha256`` and ``artifact_bytes`` of ``artifact_path`` in the manifest."""
    with open(manifest_path) as handle:
        manifest: dict[str, Any] = json.load(handle)
    manifest["artifact_sha256"] = file_sha256(artifact_path)
    manifest["artifact_bytes"] = os.path.getsize(artifact_path)
    write_json(manifest_path, manifest)
    return manifest


def artifact_matches(manifest_path: str, artifact_path: str) -> bool:
    """Whether the artifact's bytes are the ones its manifest recorded."""
    with open(manifest_path) as handle:
        recorded = json.load(handle).get("artifact_sha256")
    return bool(recorded) and file_sha256(artifact_path) == recorded
