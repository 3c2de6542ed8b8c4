"""Write small pack archives to disk for integration tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def write_pack_archive(
    folder: Path, ref: str, version: str, *, requirements: str | None = None, dependencies: str = ""
) -> Path:
    files = {
        "pack.yaml": f'ref: {ref}\nversion: "{version}"\ndescription: integration test pack\n{dependencies}',
        "actions/run.yaml": "name: run\nrunner_type: python-script\nentry_point: run.py\n",
        "actions/run.py": "def run(): return 1\n",
    }
    if requirements is not None:
        files["requirements.txt"] = requirements
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(f"{ref}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = folder / f"{ref}-{version}.tar.gz"
    path.write_bytes(out.getvalue())
    return path
