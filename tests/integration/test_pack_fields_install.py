"""A pack's pack.yaml fields survive the whole pipeline: installed through the real state machine
on the local stack, they are stored with the version and shown by ``show`` (and ``show --json``);
an installed system pack is then removed only with force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Harness
from test_pack_format_install import FIXTURES, archive_of_folder

from attune_cli.render import pack_details
from attune_packs.data.packs import read_version
from attune_packs.errors import SystemPackProtectedError

pytestmark = pytest.mark.slow


def test_a_core_like_packs_fields_are_stored_and_shown_and_it_is_protected(harness: Harness, tmp_path: Path) -> None:
    # Given Attune's core pack shape (system: true, conf_schema, config, meta, tags, runtime_deps, testing)
    archive = archive_of_folder(FIXTURES / "attune/core_like", tmp_path, "core")

    # When it is installed through the state machine
    result = harness.install(str(archive))
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output["register"]["failed_packs"] == []

    # Then show returns every kept field, as JSON the CLI prints whole
    shown = json.loads(json.dumps(harness.backend.show_pack("core"), default=str))
    manifest = shown["manifest"]
    assert shown["system"] is True and shown["enabled"] is True
    assert manifest["email"] == "core-fixture@example.org"
    assert manifest["tags"] == ["core", "system", "timers"]
    assert manifest["runtimes"] == ["native", "shell"]
    assert manifest["meta"]["keywords"] == ["core", "timers", "shell"]
    assert manifest["meta"]["documentation_url"] == "https://docs.example.org/packs/core"
    assert manifest["conf_schema"]["max_action_timeout"]["maximum"] == 3600
    assert manifest["config_schema"]["properties"]["enable_debug_logging"]["type"] == "boolean"
    assert manifest["config"] == {"max_action_timeout": 300, "enable_debug_logging": False}
    assert manifest["testing"]["runners"]["shell"]["type"] == "script"

    # And the version record holds the same fields
    version = read_version(harness.table, "core", "1.0.0")
    assert version is not None and version["manifest"] == manifest

    # And the human view says what it is
    text = pack_details(shown)
    assert "system pack: removing or replacing it needs --force" in text
    assert "    tags: core, system, timers" in text.splitlines()

    # And it is removed only with force
    with pytest.raises(SystemPackProtectedError):
        harness.backend.remove_pack("core")
    assert harness.backend.show_pack("core")["version"] == "1.0.0"
    assert harness.backend.remove_pack("core", force=True)["status"] == "removed"
