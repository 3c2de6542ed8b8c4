"""The Node.js environment: what a built ``node_modules`` holds (its manifest)."""

from __future__ import annotations

import glob
import json
import os
import shutil
from typing import TYPE_CHECKING

from .common import now_ms, tree_size
from .execution import node_version

if TYPE_CHECKING:
    from typing import Any


def installed_node_packages(modules: str) -> list[dict[str, str]]:
    """Every package under ``node_modules`` (nested ones too), from npm's hidden lockfile
    (``node_modules/.package-lock.json``) when present, else from the package folders."""
    hidden = os.path.join(modules, ".package-lock.json")
    found = set()
    if os.path.exists(hidden):
        with open(hidden) as handle:
            entries = (json.load(handle).get("packages") or {}).items()
        for path, entry in entries:
            if not path or entry.get("link"):
                continue
            found.add((entry.get("name") or path.rsplit("node_modules/", 1)[-1], entry.get("version") or ""))
    else:
        pattern = [os.path.join(modules, "*", "package.json"), os.path.join(modules, "@*", "*", "package.json")]
        for path in glob.glob(pattern[0]) + glob.glob(pattern[1]):
            with open(path) as handle:
                meta = json.load(handle)
            found.add((meta.get("name") or "", meta.get("version") or ""))
    return [{"name": n, "version": v} for n, v in sorted(found)]


def nodejs_manifest(
    root: str, *, env_hash: str, started_ms: int, installer: str, warnings: list[str]
) -> dict[str, Any]:
    """What ``root/node_modules`` holds, and the node that built it."""
    modules = os.path.join(root, "node_modules")
    node = shutil.which("node")
    return {
        "kind": "nodejs",
        "env_hash": env_hash,
        "nodejs_version": node_version(node).lstrip("v") if node else "",
        "distributions": installed_node_packages(modules),
        "size_bytes": tree_size(modules),
        "build_ms": now_ms() - started_ms,
        "layout": "node_modules",
        "installer": installer,
        "warnings": warnings,
        "built_by": os.environ.get("CODEBUILD_BUILD_ID", ""),
    }
