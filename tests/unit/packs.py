"""Build pack archives in memory for tests."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile


def stored_archive_key(body: bytes) -> str:
    """Where the download stage stores an archive: under the sha256 of its bytes (readers verify it)."""
    return f"archives/sha256/{hashlib.sha256(body).hexdigest()}.tar.gz"


def tar_gz(files: dict[str, str | bytes], *, root: str = "") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(root + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def zip_bytes(files: dict[str, str | bytes], *, root: str = "") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(root + name, content)
    return out.getvalue()


def pack_files(
    ref: str = "demo",
    version: str = "1.0.0",
    *,
    dependencies: str = "",
    requirements: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    files = {
        "pack.yaml": f'ref: {ref}\nname: {ref}\nversion: "{version}"\ndescription: test pack\n{dependencies}',
        "actions/hello.yaml": "name: hello\nrunner_type: python-script\nentry_point: hello.py\n"
        "parameters:\n  who: {type: string}\n",
        "actions/hello.py": "def run(who): return who\n",
    }
    if requirements is not None:
        files["requirements.txt"] = requirements
    files.update(extra or {})
    return files
