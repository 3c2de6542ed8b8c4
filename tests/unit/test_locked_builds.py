"""A locked installation's builds install the lock's hashed pins with --require-hashes."""

from __future__ import annotations

from fakes import FakeObjectStore
from test_build_envs_service import add_pack, run_task

from attune_packs.domain.lockfile import Lockfile, dump_lockfile

PINS = "six==1.17.0 \\\n    --hash=sha256:" + "4" * 64 + "\n"


def store_lock(store: FakeObjectStore, compiled: str) -> str:
    lock = Lockfile.model_validate(
        {
            "packs": [
                {
                    "pack_ref": "a",
                    "pack_version": "1.0.0",
                    "source": "a",
                    "source_type": "local",
                    "checksum": "sha256:" + "0" * 64,
                    "requested": True,
                    "environments": {
                        "python": {"python_version": "3.12", "platform": "aarch64-manylinux_2_28", "compiled": compiled}
                    },
                }
            ]
        }
    )
    key = "locks/" + "1" * 64 + ".json"
    store.put_bytes(key, dump_lockfile(lock).encode(), "application/json")
    return f"s3://{store.bucket}/{key}"


def test_a_locked_build_installs_the_pins_with_require_hashes_under_their_own_hash() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six\n")
    _, unlocked, _ = run_task(store, path)
    _, locked, _ = run_task(store, path, locked_requirements=store_lock(store, PINS))
    before, after = unlocked.started[0]["environment"], locked.started[0]["environment"]
    assert before["HASH_FLAG"] == "" and after["HASH_FLAG"] == "--require-hashes"
    assert after["PYTHON_REQUIREMENTS"] == "six==1.17.0 --hash=sha256:" + "4" * 64
    assert after["PYTHON_ENV_HASH"] != before["PYTHON_ENV_HASH"]
