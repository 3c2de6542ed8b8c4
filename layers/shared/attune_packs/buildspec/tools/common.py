"""Small helpers every tool module uses."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


def tree_size(root: str) -> int:
    return sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(root) for f in fs)


def write_json(path: str, document: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(document, handle)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
