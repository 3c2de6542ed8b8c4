"""A read-only CLI command is a thin HTTP client: it imports neither the models (pydantic) nor the
layer's services nor an AWS SDK, whatever it prints (each would cost it more than its request), and
builds the parsers of its own commands only (a command line parses the same as with all of them)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attune_cli.main import COMMAND_GROUPS, build_parser

ROOT = Path(__file__).resolve().parents[2]
HEAVY = [
    "pydantic",
    "attune_packs.models",
    "attune_packs.services",
    "attune_cli.planning",
    "attune_cli.backends",
    "boto3",
    "botocore",
    "requests",
    "urllib.request",
]

# Runs a read command in a fresh interpreter against a stand-in for the local service on loopback
# (its health route, one page of packs, one pack, a page of components; its service.json and
# admin token in a state dir), or for a deployed stack's API, then names the modules it imported.
SCRIPT = """
import json, os, sys, tempfile, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

PACK = {"ref": "app", "version": "1.0.0", "description": "d", "component_counts": {"actions": 1}}
ANSWERS = {
    "/api/v1/packs": {"data": [PACK], "pagination": {"limit": 1000, "next_cursor": None}},
    "/api/v1/packs/app": {"data": {**PACK, "components": {"actions": []}, "history": [], "dependents": []}},
    "/api/v1/components/actions": {"data": {"type": "actions", "components": [], "next_cursor": None}},
}

class Api(BaseHTTPRequestHandler):
    def do_GET(self):
        assert self.path == "/_local/health" or self.headers["Authorization"] == "Bearer secret"
        body = json.dumps(ANSWERS[self.path.split("?")[0]]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"
state = Path(tempfile.mkdtemp()).resolve()
(state / "service.json").write_text(json.dumps({"pid": os.getpid(), "url": url}))
(state / "admin-token").write_text("secret")
ANSWERS["/_local/health"] = {"service": "attune-local", "pid": os.getpid(), "state_dir": str(state)}
where = ["--state-dir", str(state)] if sys.argv[1] == "local" else ["--api-url", url, "--token", "secret"]
before = set(sys.modules)
from attune_cli.main import main
status = main([*sys.argv[2:], *where])
print(json.dumps({"status": status, "imported": sorted(set(sys.modules) - before)}), file=sys.stderr)
"""


@pytest.mark.parametrize("stack", ["local", "api"])
@pytest.mark.parametrize(
    "command", [["list"], ["list", "--json"], ["show", "app"], ["components", "actions", "--limit", "50"]]
)
def test_a_read_command_imports_no_models_services_or_aws_sdk(stack: str, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT / "cli")])
    env["XDG_CONFIG_HOME"] = str(ROOT / "tests" / "no-such-config")
    done = subprocess.run(  # noqa: S603 - this interpreter, this script
        [sys.executable, "-c", SCRIPT, stack, *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["status"] == 0, done.stdout
    assert "app" in done.stdout or "no actions installed" in done.stdout
    imported = set(report["imported"])
    assert "attune_cli.main" in imported and "attune_cli.api_client" in imported  # the script did run the CLI
    assert [m for m in HEAVY if m in imported] == []


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_the_command_groups_name_every_command_once() -> None:
    grouped = [name for names in COMMAND_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(_subcommands(build_parser())) and len(set(grouped)) == len(grouped)


LINES = [
    ["list", "--json"],
    ["show", "big", "--state-dir", "/tmp/x"],
    ["status", "api-1"],
    ["components", "actions", "--limit", "50", "--cursor", "p"],
    ["install", "-q", "--skip-env-build", "a.tar.gz", "--lock-out", "lock"],
    ["plan", "slack", "--registry", "index.json"],
    ["lock", "slack", "-o", "out.lock"],
    ["remove", "app", "--force"],
    ["rollback", "app", "1.0.0"],
    ["upload", "a.zip", "-q"],
    ["tests", "app", "--page", "2"],
    ["test", "app", "--no-wait"],
    ["token", "create", "--name", "ci", "--scopes", "read", "install"],
    ["local", "start", "--port", "0"],
]


@pytest.mark.parametrize("line", LINES, ids=lambda line: " ".join(line[:2]))
def test_a_command_line_parses_the_same_with_only_its_commands_parsers(line: list[str]) -> None:
    assert vars(build_parser(line[0]).parse_args(line)) == vars(build_parser().parse_args(line))
    assert set(_subcommands(build_parser(line[0]))) < set(_subcommands(build_parser()))
