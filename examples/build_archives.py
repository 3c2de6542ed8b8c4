"""Rebuild examples/archives/*.tar.gz and examples/index.json from examples/packs/.

Archives are reproducible (sorted members, fixed owner and mtime, gzip without a timestamp), so
re-running this changes nothing unless a pack changed. `python examples/build_archives.py --check`
exits non-zero when the committed archives or index are out of date. The archives are written by
the same builder the tests use (``testkit.pack_archives``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as `python examples/build_archives.py`: the repository root holds testkit
    sys.path.insert(0, str(HERE.parent))

from testkit.pack_archives import tar_gz  # noqa: E402 - after the root is importable

PACKS, ARCHIVES, INDEX = HERE / "packs", HERE / "archives", HERE / "index.json"


def tar_members(pack_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(pack_dir.parent)): p.read_bytes()
        for p in sorted(pack_dir.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def build_archive(pack_dir: Path) -> bytes:
    """PAX tar, members sorted, mode 0644, owner 0, mtime 0; gzip level 9 without a timestamp."""
    return tar_gz(tar_members(pack_dir))


def manifest(pack_dir: Path) -> dict:
    data = yaml.safe_load((pack_dir / "pack.yaml").read_text())
    return {
        "ref": data.get("ref") or data["name"],
        "version": str(data["version"]),
        "description": data.get("description", ""),
    }


def build_index(archives: dict[str, tuple[dict, bytes]]) -> dict:
    packs = []
    for file_name, (meta, content) in sorted(archives.items()):
        packs.append(
            {
                **meta,
                "install_sources": [
                    {
                        "type": "archive",
                        "url": f"archives/{file_name}",
                        "checksum": "sha256:" + hashlib.sha256(content).hexdigest(),
                    }
                ],
            }
        )
    return {"name": "attune-examples", "packs": packs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only verify the committed files are current")
    args = parser.parse_args()
    archives = {}
    for pack_dir in sorted(p for p in PACKS.iterdir() if (p / "pack.yaml").exists()):
        meta = manifest(pack_dir)
        archives[f"{meta['ref']}-{meta['version']}.tar.gz"] = (meta, build_archive(pack_dir))
    if args.check:
        stale = []
        for file_name, (meta, _) in archives.items():
            committed = ARCHIVES / file_name
            if not committed.exists() or _contents(committed.read_bytes()) != tar_members(PACKS / _dir_of(meta)):
                stale.append(file_name)
        committed_index = json.loads(INDEX.read_text()) if INDEX.exists() else {}
        expected = build_index(
            {f: (m, (ARCHIVES / f).read_bytes() if (ARCHIVES / f).exists() else b"") for f, (m, _) in archives.items()}
        )
        if committed_index != expected:
            stale.append("index.json")
        if stale:
            print("out of date: " + ", ".join(stale) + " (run python examples/build_archives.py)", file=sys.stderr)
            return 1
        return 0
    ARCHIVES.mkdir(exist_ok=True)
    for file_name, (_, content) in archives.items():
        (ARCHIVES / file_name).write_bytes(content)
    INDEX.write_text(json.dumps(build_index(archives), indent=2) + "\n")
    return 0


def _dir_of(meta: dict) -> str:
    return meta["ref"]


def _contents(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
