"""The command line the buildspec calls: ``python3 "$TOOLS" <command> ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .artifacts import artifact_matches, seal_manifest
from .common import write_json
from .extract_pack import extract
from .node_env import nodejs_manifest
from .pack_tests import run_tests_command
from .python_env import python_manifest
from .reporting import (
    build_result,
    failure_cause,
    failure_report,
    reference_answer,
    short_cause,
    task_answer,
    unique_report_key,
)

if TYPE_CHECKING:
    from typing import Any


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Helpers of the environment build (attune-packs).")
    commands = parser.add_subparsers(dest="command", required=True)
    py = commands.add_parser("python-manifest", help="describe ROOT/site-packages")
    py.add_argument("root")
    py.add_argument("--started-ms", type=int, required=True)
    py.add_argument("--installer", required=True)
    node = commands.add_parser("nodejs-manifest", help="describe ROOT/node_modules")
    node.add_argument("root")
    node.add_argument("--started-ms", type=int, required=True)
    node.add_argument("--installer", required=True)
    node.add_argument("--warning", action="append", default=[])
    for name, text in (("seal", "record the artifact's sha256 in its manifest"), ("verify", "check it")):
        sealing = commands.add_parser(name, help=text)
        sealing.add_argument("manifest")
        sealing.add_argument("artifact")
    result = commands.add_parser("result", help="print the BuiltEnvironment this build produced")
    result.add_argument("out")
    answer = commands.add_parser("answer", help="print the task answer (task_answer) of a result file")
    answer.add_argument("result_file")
    answer.add_argument("--reference", metavar="S3_URI", help="the result is stored there: answer a reference")
    unique = commands.add_parser("result-key", help="print the key this build stores its result at")
    unique.add_argument("report_key")
    unique.add_argument("build_id")
    cause = commands.add_parser("failure-cause", help="print why this build failed")
    cause.add_argument("log")
    short = commands.add_parser("short-cause", help="print the task failure cause of a cause file")
    short.add_argument("cause_file")
    short.add_argument("report_uri", nargs="?", default="")
    failed = commands.add_parser("failure-report", help="print the stored report of a cause file")
    failed.add_argument("cause_file")
    unpack = commands.add_parser("extract", help="unpack a stored canonical pack archive after checking its digest")
    unpack.add_argument("archive")
    unpack.add_argument("dest", help="an existing, empty folder")
    unpack.add_argument("key", nargs="?", help="the stored object's key or URI, naming its sha256")
    run = commands.add_parser("run-tests", help="run the tests of $TEST_CONFIG and write the report")
    run.add_argument("--pack-dir", required=True)
    run.add_argument("--python-version", required=True)
    run.add_argument("--site-packages")
    run.add_argument("--node-modules")
    run.add_argument("--work", required=True)
    run.add_argument("--report", required=True, help="the full report (JSON) to write")
    run.add_argument("--summary", required=True, help="the summary (test_result) to write")
    run.add_argument("--report-uri", required=True, help="where the report will be stored")
    return parser


def _manifest_beside(root: str, kind: str, manifest: dict[str, Any], installer: str) -> int:
    write_json(os.path.join(os.path.dirname(os.path.abspath(root)), f"{kind}.manifest.json"), manifest)
    print(f"{manifest['env_hash'][:12]}: {len(manifest['distributions'])} distribution(s) with {installer}")
    return 0


def _python_manifest(args: argparse.Namespace, environ: dict[str, str]) -> int:
    manifest = python_manifest(
        args.root,
        env_hash=environ["PYTHON_ENV_HASH"],
        python_version=environ["PYTHON_VERSION"],
        platform=environ["PYTHON_PLATFORM"],
        started_ms=args.started_ms,
        installer=args.installer,
    )
    return _manifest_beside(args.root, "python", manifest, args.installer)


def _nodejs_manifest(args: argparse.Namespace, environ: dict[str, str]) -> int:
    manifest = nodejs_manifest(
        args.root,
        env_hash=environ["NODEJS_ENV_HASH"],
        started_ms=args.started_ms,
        installer=args.installer,
        warnings=args.warning,
    )
    return _manifest_beside(args.root, "nodejs", manifest, args.installer)


def _seal(args: argparse.Namespace, environ: dict[str, str]) -> int:
    manifest = seal_manifest(args.manifest, args.artifact)
    print(f"{os.path.basename(args.artifact)}: sha256 {manifest['artifact_sha256']}")
    return 0


def _verify(args: argparse.Namespace, environ: dict[str, str]) -> int:
    if artifact_matches(args.manifest, args.artifact):
        return 0
    print(f"{args.artifact} does not match the sha256 its manifest recorded: it was replaced", file=sys.stderr)
    return 1


def _result(args: argparse.Namespace, environ: dict[str, str]) -> int:
    print(json.dumps(build_result(args.out, environ)))
    return 0


def _answer(args: argparse.Namespace, environ: dict[str, str]) -> int:
    with open(args.result_file, "rb") as handle:
        content = handle.read()
    result = json.loads(content)
    print(json.dumps(reference_answer(result, args.reference, content) if args.reference else task_answer(result)))
    return 0


def _result_key(args: argparse.Namespace, environ: dict[str, str]) -> int:
    print(unique_report_key(args.report_key, args.build_id))
    return 0


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _short_cause(args: argparse.Namespace, environ: dict[str, str]) -> int:
    print(short_cause(_read_text(args.cause_file).rstrip("\n"), args.report_uri))
    return 0


def _failure_report(args: argparse.Namespace, environ: dict[str, str]) -> int:
    print(json.dumps(failure_report(environ.get("PACK_REF", ""), _read_text(args.cause_file).rstrip("\n"))))
    return 0


def _failure_cause(args: argparse.Namespace, environ: dict[str, str]) -> int:
    print(failure_cause(environ, _read_text(args.log).splitlines()))
    return 0


def _extract(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """A refusal raises ExtractError: the command fails with its code and reason in the build log."""
    written = extract(Path(args.archive), Path(args.dest), args.key)
    print(f"{len(written)} member(s) unpacked")
    return 0


COMMANDS = {
    "extract": _extract,
    "python-manifest": _python_manifest,
    "nodejs-manifest": _nodejs_manifest,
    "seal": _seal,
    "verify": _verify,
    "result": _result,
    "answer": _answer,
    "result-key": _result_key,
    "short-cause": _short_cause,
    "failure-report": _failure_report,
    "failure-cause": _failure_cause,
    "run-tests": run_tests_command,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return COMMANDS[args.command](args, dict(os.environ))
