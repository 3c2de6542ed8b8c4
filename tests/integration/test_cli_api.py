"""`attune-packs` against a stack's HTTP API (here the local stack's API server), with tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.http_server import LocalApiServer
from attune_cli.local_stack import LocalStack
from attune_cli.main import EXIT_FAILED, EXIT_OK, main
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.services.tokens import create_token
from testkit.pack_archives import write_pack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Cli:
    def __init__(self, url: str, admin: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url, self.admin, self.capsys = url, admin, capsys

    def __call__(self, *args: str, token: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--api-url", self.url, "--token", token or self.admin])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, token: str | None = None) -> object:
        code, out, err = self(*args, "--json", token=token)
        assert code == EXIT_OK, err
        return json.loads(out)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with LocalStack(tmp_path_factory.mktemp("cli-api") / "state") as stack, LocalApiServer(stack) as server:
        table = DynamoPackTable(stack.client("dynamodb"), stack.table)
        yield server.url, create_token(table, name="bootstrap", scopes=["admin"]).token


@pytest.fixture
def cli(served: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("ATTUNE_API_URL", raising=False)
    monkeypatch.delenv("ATTUNE_TOKEN", raising=False)
    return Cli(*served, capsys)


def test_install_list_show_and_upload_through_the_api(cli: Cli, tmp_path: Path) -> None:
    # Given a read-only token created through the API
    created = cli.json("token", "create", "--name", "reader", "--scopes", "read")
    assert isinstance(created, dict) and created["scopes"] == ["read"]
    reader = created["token"]

    # When a pack is installed through the API, Then progress shows per stage and the summary is readable
    code, out, err = cli("install", "core_utils", "--registry", str(ROOT / "examples" / "index.json"))
    assert code == EXIT_OK, err
    for stage in ("download", "dependencies", "register"):  # progress, rebuilt from the stage transitions
        assert f"✓ {stage} (" in err, err
    assert "Registered:" in out and "core_utils 1.0.0" in out

    # And the read token lists and shows it
    listed = cli.json("list", token=reader)
    assert isinstance(listed, list) and [p["ref"] for p in listed] == ["core_utils"]
    shown = cli.json("show", "core_utils", token=reader)
    assert isinstance(shown, dict) and shown["ref"] == "core_utils"

    # And an uploaded archive installs itself; the CLI follows that installation to its end
    archive = write_pack(tmp_path, "uploaded_pack")
    report = cli.json("upload", str(archive), "--quiet")
    assert isinstance(report, dict) and report["outcome"] == "ok"
    assert [p["pack_ref"] for p in report["registered"]] == ["uploaded_pack"]

    # But the read token cannot install: a readable 403 and a failing exit code
    code, _out, err = cli("install", "core_utils", "--quiet", token=reader)
    assert code == EXIT_FAILED and "403" in err and "Traceback" not in err


def test_tokens_are_listed_without_secrets_and_a_revoked_token_is_refused(cli: Cli) -> None:
    created = cli.json("token", "create", "--name", "short-lived", "--scopes", "read", "--ttl-days", "1")
    assert isinstance(created, dict)
    listed = cli.json("token", "list")
    assert isinstance(listed, list) and "short-lived" in [t["name"] for t in listed]
    assert all("token" not in t and "token_hash" not in t for t in listed)

    revoked = cli.json("token", "revoke", created["token_id"])
    assert isinstance(revoked, dict) and revoked["revoked_at"]
    code, _out, err = cli("list", token=created["token"])
    assert code == EXIT_FAILED and "401" in err


def test_an_unreachable_api_is_a_readable_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["list", "--api-url", "http://127.0.0.1:9", "--token", "x"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "cannot reach the API" in err


def test_a_remote_api_over_plain_http_is_refused_before_the_token_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["list", "--api-url", "http://api.example.com", "--token", "secret"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "API_URL_INSECURE" in err and "secret" not in err


def test_an_explicit_state_dir_wins_over_an_api_url_in_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTUNE_API_URL", "http://127.0.0.1:9")
    code = main(["list", "--json", "--state-dir", str(tmp_path / "state")])
    assert code == EXIT_OK and json.loads(capsys.readouterr().out) == []


def test_upload_uses_the_multipart_route_below_its_limit_and_the_presigned_one_beyond(
    cli: Cli, served: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attune_cli.api_client import ApiBackend
    from attune_packs.api import bounds

    archive = write_pack(tmp_path, "multipart_pack")
    backend = ApiBackend(*served)
    routes: list[str] = []
    real_call = backend._call

    def spy(method: str, path: str, **kwargs: object) -> object:
        routes.append(path)
        return real_call(method, path, **kwargs)

    monkeypatch.setattr(backend, "_call", spy)
    small = backend.upload(archive)
    assert routes == ["/packs/upload"]
    result = backend.follow(small, lambda _event: None, poll_seconds=0.3)
    assert result.status == "SUCCEEDED"

    monkeypatch.setattr(bounds, "MAX_MULTIPART_BYTES", 4096)  # the archive is now "large"
    large = backend.upload(archive)
    uploads = [r for r in routes if r.startswith("/packs/upload")]
    assert uploads == ["/packs/upload", "/packs/uploads"] and large.startswith("upload-")


def test_pack_tests_from_the_cli(cli: Cli) -> None:
    code, _out, err = cli("install", "core_utils", "--quiet", "--registry", str(ROOT / "examples" / "index.json"))
    assert code == EXIT_OK, err
    history = cli.json("tests", "core_utils")
    assert isinstance(history, dict) and history["pack_ref"] == "core_utils" and history["executions"] == []
    code, _out, err = cli("test", "core_utils")
    assert code == EXIT_FAILED and "declares no enabled tests" in err, err
