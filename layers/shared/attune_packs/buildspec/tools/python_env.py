"""The Python environment: what a built ``site-packages`` holds (its manifest)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .common import now_ms, tree_size

if TYPE_CHECKING:
    from typing import Any


def python_manifest(
    root: str, *, env_hash: str, python_version: str, platform: str, started_ms: int, installer: str
) -> dict[str, Any]:
    """What ``root/site-packages`` holds."""
    import importlib.metadata as metadata

    site = os.path.join(root, "site-packages")
    dists = sorted({(d.metadata["Name"], d.version) for d in metadata.distributions(path=[site])})
    return {
        "kind": "python",
        "env_hash": env_hash,
        "python_version": python_version,
        "platform": platform,
        "distributions": [{"name": n, "version": v} for n, v in dists],
        "size_bytes": tree_size(site),
        "build_ms": now_ms() - started_ms,
        "layout": "site-packages",
        "installer": installer,
        "warnings": []
        if installer.startswith("uv")
        else [f"built with {installer}: uv is not available on the build machine"],
        "built_by": os.environ.get("CODEBUILD_BUILD_ID", ""),
    }
