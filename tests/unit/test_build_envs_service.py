"""Build stage: cache hits answer at once with no build; misses start one build per pack."""

from __future__ import annotations

import json
from typing import Any

from fakes import FakeObjectStore
from packs import pack_files, tar_gz

from attune_packs.models import BuildOptions, BuildTask
from attune_packs.services.build_envs import handle_build_task, plan_environments
from attune_packs.services.packs import load_pack


class FakeStarter:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start(self, **kwargs: Any) -> str:
        self.started.append(kwargs)
        return f"build:{len(self.started)}"

    def status(self, build_id: str) -> dict[str, Any]:
        return {"buildStatus": "SUCCEEDED"}


class FakeTokens:
    def __init__(self) -> None:
        self.succeeded: list[tuple[str, dict[str, Any]]] = []
        self.failed: list[tuple[str, str, str]] = []

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self.succeeded.append((token, output))

    def fail(self, token: str, error: str, cause: str) -> bool:
        self.failed.append((token, error, cause))
        return True


def test_a_miss_starts_a_build_carrying_the_token_and_the_plan() -> None:
    store, starter, tokens = FakeObjectStore(), FakeStarter(), FakeTokens()
    path = store.add("archives/sha256/a.tar.gz", tar_gz(pack_files("a", requirements="six==1.17.0\n"), root="a/"))
    result = handle_build_task(
        BuildTask(task_token="tok", pack_path=path, options=BuildOptions()),
        store=store,
        starter=starter,
        tokens=tokens,
        architecture="arm64",
    )
    assert result["status"] == "building"
    [build] = starter.started
    env = build["environment"]
    assert env["TASK_TOKEN"] == "tok" and env["BUILD_PYTHON"] == "1" and env["BUILD_NODEJS"] == "0"
    assert env["PACK_ROOT"] == "a/" and env["PYTHON_PLATFORM"] == "aarch64-manylinux_2_28"
    assert "phases" in build["buildspec"]
    assert tokens.succeeded == []


def test_a_hit_answers_the_token_without_any_build() -> None:
    store, starter, tokens = FakeObjectStore(), FakeStarter(), FakeTokens()
    path = store.add("archives/sha256/a.tar.gz", tar_gz(pack_files("a", requirements="six==1.17.0\n")))
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store.add(plan.artifact_key, b"tarball")
    store.add(
        plan.manifest_key,
        json.dumps(
            {
                "kind": "python",
                "env_hash": plan.env_hash,
                "python_version": "3.12",
                "distributions": [{"name": "six", "version": "1.17.0"}],
                "size_bytes": 10,
            }
        ).encode(),
    )
    result = handle_build_task(
        BuildTask(task_token="tok", pack_path=path, options=BuildOptions()),
        store=store,
        starter=starter,
        tokens=tokens,
        architecture="arm64",
    )
    assert result["status"] == "cached" and starter.started == []
    [(token, output)] = tokens.succeeded
    assert token == "tok" and output["environments"]["python"]["cached"] is True
    assert output["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]


def test_a_manifest_for_another_hash_is_not_a_hit_and_force_rebuild_ignores_the_cache() -> None:
    store, starter, tokens = FakeObjectStore(), FakeStarter(), FakeTokens()
    path = store.add("archives/sha256/a.tar.gz", tar_gz(pack_files("a", requirements="six\n")))
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store.add(plan.artifact_key, b"tarball")
    store.add(plan.manifest_key, json.dumps({"kind": "python", "env_hash": "other", "distributions": []}).encode())
    handle_build_task(
        BuildTask(task_token="t", pack_path=path, options=BuildOptions()),
        store=store,
        starter=starter,
        tokens=tokens,
        architecture="arm64",
    )
    assert len(starter.started) == 1


def test_two_packs_with_equal_requirements_share_one_environment_hash() -> None:
    store = FakeObjectStore()
    a = load_pack(store.add("archives/sha256/a.tar.gz", tar_gz(pack_files("a", requirements="six==1.17.0\n"))), store)
    b = load_pack(
        store.add("archives/sha256/b.tar.gz", tar_gz(pack_files("b", requirements="# x\nsix==1.17.0\n"))), store
    )
    assert plan_environments(a, BuildOptions(), "arm64") == plan_environments(b, BuildOptions(), "arm64")
    assert plan_environments(a, BuildOptions(skip_python=True), "arm64") == []
