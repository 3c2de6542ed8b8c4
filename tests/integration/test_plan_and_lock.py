"""Plan and lock through the real state machine on the local stack (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES_INDEX, Harness

from attune_cli import planning
from attune_cli.local_stack import LocalStack
from attune_packs.errors import LockMismatchError
from attune_packs.models import InstallRequest, LockPin
from testkit.pack_archives import pack_files, write_pack

pytestmark = pytest.mark.slow


def plan(harness: Harness, *packs: str, **options: Any) -> dict[str, Any]:
    options.setdefault("registry_url", EXAMPLES_INDEX)
    return planning.plan(harness.backend_with_services(), InstallRequest(packs=list(packs), **options))


def test_the_plan_of_a_fresh_install_is_what_the_install_then_does(harness: Harness) -> None:
    # Given an empty stack, When notify_slack is planned
    before = (harness.keys("archives/"), harness.keys("envs/"), harness.keys("staging/"))
    planned = plan(harness, "notify_slack")

    # Then the plan orders its dependencies first, says why each is there, and found no conflict
    assert planned["ok"], planned
    assert planned["install_order"] == ["core_utils", "http_tools", "notify_slack"]
    by_ref = {p["pack_ref"]: p for p in planned["packs"]}
    assert by_ref["notify_slack"]["requested"] and not by_ref["http_tools"]["requested"]
    assert {r["required_by"] for r in by_ref["http_tools"]["required_by"]} == {"notify_slack"}
    assert all(p["action"] == "install" and p["checksum"].startswith("sha256:") for p in planned["packs"])
    [env] = by_ref["http_tools"]["environments"]
    assert env["kind"] == "python" and env["cached"] is False and planned["environments_to_build"] == 1

    # And it left nothing behind: no archive, environment or staging object, nothing registered
    assert (harness.keys("archives/"), harness.keys("envs/"), harness.keys("staging/")) == before
    assert harness.table.get_item("PACK#notify_slack", "CURRENT") is None

    # When the install runs, Then it does what the plan said: same packs, order, digests, env hash
    result = harness.install("notify_slack")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    registered = result.output["register"]["registered_packs"]
    assert [p["pack_ref"] for p in registered] == planned["install_order"]
    for ref, pack in by_ref.items():
        assert harness.backend.show_pack(ref)["checksum"] == pack["checksum"]
    assert harness.backend.show_pack("http_tools")["environments"]["python"]["env_hash"] == env["env_hash"]

    # And planned again, everything is installed and unchanged, its environment a cache hit
    again = plan(harness, "notify_slack")
    assert again["unchanged"] == ["core_utils", "http_tools", "notify_slack"]
    assert again["environments_to_build"] == 0
    [http_tools] = plan(harness, "http_tools")["packs"]
    assert http_tools["action"] == "unchanged" and [e["cached"] for e in http_tools["environments"]] == [True]


def _pack(tmp_path: Path, version: str, actions: list[str], *, description: str = "test pack") -> Path:
    files = pack_files("demo", version, action=actions[0], description=description)
    for name in actions[1:]:
        files[f"actions/{name}.yaml"] = (
            f"name: {name}\nrunner_type: python-script\nentry_point: {name}.py\nparameters:\n  who: {{type: string}}\n"
        )
        files[f"actions/{name}.py"] = "def run(who): return who\n"
    folder = tmp_path / version
    folder.mkdir()
    return write_pack(folder, "demo", version, files)


def test_the_plan_of_an_upgrade_shows_the_component_diff(harness: Harness, tmp_path: Path) -> None:
    # Given demo 1.0.0 with actions hello, one and two
    old = _pack(tmp_path, "1.0.0", ["hello", "one", "two"])
    assert harness.install(str(old)).status == "SUCCEEDED"
    # And demo 1.1.0 that drops one and two, adds three and changes hello's parameters
    new_files = pack_files("demo", "1.1.0")
    new_files["actions/hello.yaml"] = (
        "name: hello\nrunner_type: python-script\nentry_point: hello.py\nparameters:\n  who: {type: integer}\n"
    )
    new_files["actions/three.yaml"] = "name: three\nrunner_type: python-script\nentry_point: hello.py\n"
    folder = tmp_path / "new"
    folder.mkdir()
    new = write_pack(folder, "demo", "1.1.0", new_files)

    # When the upgrade is planned
    planned = plan(harness, str(new))

    # Then the diff says two actions go, one comes, one changes (its parameters)
    [pack] = planned["packs"]
    assert pack["action"] == "upgrade" and pack["installed_version"] == "1.0.0"
    diff = pack["diff"]
    assert [(c["type"], c["ref"]) for c in diff["removed"]] == [("actions", "demo.one"), ("actions", "demo.two")]
    assert [(c["type"], c["ref"]) for c in diff["added"]] == [("actions", "demo.three")]
    assert [(c["ref"], c["fields"]) for c in diff["changed"]] == [("demo.hello", ["parameters"])]

    # And the install does it: the registered actions are exactly the planned ones
    assert harness.install(str(new)).status == "SUCCEEDED"
    actions = {c["ref"] for c in harness.backend.show_pack("demo")["components"]["actions"]}
    assert actions == {"demo.hello", "demo.three"}


def test_the_plan_of_a_conflicting_request_explains_the_conflict(harness: Harness, tmp_path: Path) -> None:
    # Given two versions of one pack in one request
    first = _pack(tmp_path, "1.0.0", ["hello"])
    second = _pack(tmp_path, "2.0.0", ["hello"])

    # When it is planned, Then the plan reports the conflict as the install does, and is not ok
    planned = plan(harness, str(first), str(second))
    assert not planned["ok"]
    assert [c["error_code"] for c in planned["conflicts"]] == ["DEPENDENCY_CONFLICT"]
    result = harness.install(str(first), str(second))
    install_conflicts = result.output["dependencies"]["conflicts"]
    assert [c["message"] for c in install_conflicts] == [c["message"] for c in planned["conflicts"]]


def test_a_lock_installs_identically_on_a_second_empty_stack(tmp_path: Path) -> None:
    request = InstallRequest(packs=["notify_slack"], registry_url=EXAMPLES_INDEX)
    # Given a lock of notify_slack made against a first stack, which then installs it --locked
    with LocalStack(tmp_path / "first") as first_stack:
        first = Harness(first_stack)
        lock = planning.lock(first.backend_with_services(), request)
        result = _install_locked(first, request, lock)
        again = planning.verify_locked(first.backend_with_services(), request, lock)
        assert set(again.locked or {}) == {"core_utils", "http_tools", "notify_slack"}
        registered = {ref: first.backend.show_pack(ref) for ref in ("core_utils", "http_tools", "notify_slack")}
    # And http_tools' environment was built from the locked, hashed pins (its hash is the lock's)
    [build] = result.output["builds"]
    assert build["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]
    assert (
        registered["http_tools"]["environments"]["python"]["env_hash"]
        == lock["packs"][1]["environments"]["python"]["env_hash"]
    )
    # Then the lock pins every pack in order, and http_tools' requirement with its hashes
    assert [p["pack_ref"] for p in lock["packs"]] == ["core_utils", "http_tools", "notify_slack"]
    python = lock["packs"][1]["environments"]["python"]
    assert [(r["name"], r["version"]) for r in python["requirements"]] == [("six", "1.17.0")]
    assert python["requirements"][0]["hashes"] and "--hash=sha256:" in python["compiled"]

    # (and the same lock verifies again on the stack that installed it: its dependencies are
    # installed with exactly the locked content)
    # When it is installed --locked on a second, empty stack
    with LocalStack(tmp_path / "second") as second_stack:
        second = Harness(second_stack)
        _install_locked(second, request, lock)
        # Then the registrations are identical: same digests, same environment hashes
        for ref, before in registered.items():
            after = second.backend.show_pack(ref)
            assert (after["version"], after["checksum"]) == (before["version"], before["checksum"])
            assert {k: v["env_hash"] for k, v in (after["environments"] or {}).items()} == {
                k: v["env_hash"] for k, v in (before["environments"] or {}).items()
            }


def _install_locked(harness: Harness, request: InstallRequest, lock: dict[str, Any]) -> Any:
    locked = planning.verify_locked(harness.backend_with_services(), request, lock)
    assert set(locked.locked or {}) == {p["pack_ref"] for p in lock["packs"]}
    assert locked.locked_requirements is not None
    result = harness.backend.follow(
        harness.backend.start_install(locked).arn, lambda _e: None, poll_seconds=0.2, timeout=900
    )
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output["register"]["failed_packs"] == []
    return result


def _demo_lock(harness: Harness, archive: Path) -> dict[str, Any]:
    return planning.lock(harness.backend_with_services(), InstallRequest(packs=[str(archive)]))


def _mismatch(harness: Harness, archive: Path, lock: dict[str, Any], **kwargs: Any) -> LockMismatchError:
    with pytest.raises(LockMismatchError) as refused:
        planning.verify_locked(harness.backend_with_services(), InstallRequest(packs=[str(archive)]), lock, **kwargs)
    assert refused.value.error_code == "LOCK_MISMATCH"
    return refused.value


def test_a_changed_archive_is_refused_with_lock_mismatch(harness: Harness, tmp_path: Path) -> None:
    # Given a lock of a local archive, When the archive changes under the same version
    archive = _pack(tmp_path, "1.0.0", ["hello"])
    lock = _demo_lock(harness, archive)
    write_pack(archive.parent, "demo", "1.0.0", pack_files("demo", "1.0.0", description="changed"))
    # Then the locked install is refused, naming the checksum that moved, and nothing is registered
    refused = _mismatch(harness, archive, lock)
    assert [(d["pack_ref"], d["field"]) for d in refused.details] == [("demo", "checksum")]
    assert d_locked(refused) == lock["packs"][0]["checksum"]
    assert harness.table.get_item("PACK#demo", "CURRENT") is None


def d_locked(error: LockMismatchError) -> Any:
    return error.details[0]["locked"]


def test_the_state_machine_refuses_content_other_than_the_pins(harness: Harness, tmp_path: Path) -> None:
    # Given pins that a source no longer matches (it moved after the lock was verified)
    archive = _pack(tmp_path, "1.0.0", ["hello"])
    pins = {"demo": LockPin(pack_version="1.0.0", checksum="sha256:" + "0" * 64)}
    # When the install runs with them, Then the download stage refuses it with LOCK_MISMATCH
    result = harness.install(str(archive), locked=pins)
    [failure] = result.output["download"]["failed_packs"]
    assert failure["error_code"] == "LOCK_MISMATCH" and "checksum" in failure["error"]
    assert harness.table.get_item("PACK#demo", "CURRENT") is None


def _python_pack(tmp_path: Path) -> Path:
    folder = tmp_path / "py"
    folder.mkdir()
    return write_pack(folder, "pydemo", "1.0.0", pack_files("pydemo", "1.0.0", requirements="six\n"))


def _compiler(version: str, digest: str) -> Any:
    def compile_python(requirements: str, python_version: str, platform: str) -> str:
        assert requirements == "six\n" and python_version == "3.12" and platform.endswith("manylinux_2_28")
        return f"six=={version} \\\n    --hash=sha256:{digest * 64}\n"

    return compile_python


def test_a_requirement_resolving_differently_is_refused(harness: Harness, tmp_path: Path) -> None:
    archive = _python_pack(tmp_path)
    request = InstallRequest(packs=[str(archive)])
    lock = planning.lock(harness.backend_with_services(), request, compile_python=_compiler("1.16.0", "a"))
    # When six now resolves to 1.17.0, Then LOCK_MISMATCH names the requirement and both versions
    refused = _mismatch(harness, archive, lock, compile_python=_compiler("1.17.0", "a"))
    assert refused.details == [
        {"pack_ref": "pydemo", "field": "python requirement six", "locked": "1.16.0", "found": "1.17.0"}
    ]


def test_an_index_serving_other_content_is_refused(harness: Harness, tmp_path: Path) -> None:
    archive = _python_pack(tmp_path)
    request = InstallRequest(packs=[str(archive)])
    lock = planning.lock(harness.backend_with_services(), request, compile_python=_compiler("1.17.0", "a"))
    # When the index serves six 1.17.0 with other files (other hashes), Then LOCK_MISMATCH
    refused = _mismatch(harness, archive, lock, compile_python=_compiler("1.17.0", "b"))
    assert [d["field"] for d in refused.details] == ["python requirement six==1.17.0 hashes"]
    # And the same resolution verifies: the locked request carries the pins
    locked = planning.verify_locked(
        harness.backend_with_services(), request, lock, compile_python=_compiler("1.17.0", "a")
    )
    assert locked.locked["pydemo"].checksum == lock["packs"][0]["checksum"]
