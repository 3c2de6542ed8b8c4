"""`attune-packs components / rollback / remove` against the embedded local stack."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from attune_cli.local_stack import LocalStack
from attune_cli.main import main
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.adapters.s3 import S3ObjectStore
from attune_packs.models import RegisterRequest
from attune_packs.services.stages.register import register_packs
from testkit.pack_archives import manifest, tar_gz

pytestmark = pytest.mark.slow


def archive(ref: str, version: str, actions: list[str], deps: str = "") -> bytes:
    files = {"pack.yaml": manifest(ref, version, description="cli test pack", dependencies=deps)}
    files.update({f"actions/{a}.yaml": f"name: {a}\nrunner_type: shell\ndescription: does {a}\n" for a in actions})
    return tar_gz(files)


def cli(capsys: pytest.CaptureFixture[str], state: Path, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def test_components_rollback_and_remove_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given lib 1.0.0 then 1.1.0, and app depending on lib, registered on the local stack
    state = tmp_path / "state"
    with LocalStack(state) as stack:
        store = S3ObjectStore(stack.client("s3"), stack.bucket)
        table = DynamoPackTable(stack.client("dynamodb"), stack.table)
        for body in (
            archive("lib", "1.0.0", ["old"]),
            archive("lib", "1.1.0", ["fetch", "parse"]),
            archive("app", "1.0.0", ["main"], "dependencies: [lib]\n"),
        ):
            key = f"archives/sha256/{hashlib.sha256(body).hexdigest()}.tar.gz"
            store.put_bytes(key, body)
            response = register_packs(
                RegisterRequest(pack_paths=[f"s3://{stack.bucket}/{key}"]), store=store, table=table
            )
            assert response.registered_packs, response.failed_packs

    # When the actions are listed, Then the current ones of every pack show, by ref
    code, out, _ = cli(capsys, state, "components", "actions", "--json")
    assert code == 0
    assert [(c["ref"], c["pack_version"]) for c in json.loads(out)["components"]] == [
        ("app.main", "1.0.0"),
        ("lib.fetch", "1.1.0"),
        ("lib.parse", "1.1.0"),
    ]

    # When lib is rolled back, Then 1.0.0's components are current again
    code, out, _ = cli(capsys, state, "rollback", "lib")
    assert code == 0 and out.strip() == "rolled back lib 1.1.0 -> 1.0.0 (pointer flip)"

    # When lib is removed while app depends on it, Then it is refused with the reason
    code, out, err = cli(capsys, state, "remove", "lib")
    assert code == 2 and out == ""
    assert "PACK_HAS_DEPENDENTS" in err and "app" in err

    # When app is removed, Then only lib's current action remains listed
    code, out, _ = cli(capsys, state, "remove", "app")
    assert code == 0 and out.startswith("removed app 1.0.0 (1 component item(s) deleted; version history kept")
    code, out, _ = cli(capsys, state, "components", "actions")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["REF", "VERSION", "RUNNER", "DESCRIPTION"]
    assert lines[1].split() == ["lib.old", "1.0.0", "shell", "does", "old"] and len(lines) == 2
