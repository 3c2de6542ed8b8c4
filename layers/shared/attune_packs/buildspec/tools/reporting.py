"""What a build reports: its result (a ``BuiltEnvironment``), the answer to its task token (small,
or a reference to the stored result), and the cause of a failed build."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import TYPE_CHECKING

from .common import now_ms

if TYPE_CHECKING:
    from typing import Any


def build_result(out: str, environ: dict[str, str]) -> dict[str, Any]:
    """The ``BuiltEnvironment`` a successful build answers its task token with: the environments
    it built (``<kind>.manifest.json``), those that were already stored (``<kind>.cached.manifest.json``,
    fetched by the build) and the test result."""
    environments = {}
    for kind in ("python", "nodejs"):
        built = os.path.join(out, f"{kind}.manifest.json")
        path = built if os.path.exists(built) else os.path.join(out, f"{kind}.cached.manifest.json")
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            manifest = json.load(handle)
        environments[kind] = {
            "artifact": f"s3://{environ['BUCKET']}/envs/{manifest['env_hash']}/{kind}.tar.gz",
            "env_hash": manifest["env_hash"],
            "requirements_installed": [f"{d['name']}=={d['version']}" for d in manifest["distributions"]],
            "package_count": len(manifest["distributions"]),
            "python_version": manifest.get("python_version"),
            "nodejs_version": manifest.get("nodejs_version"),
            "size_bytes": manifest["size_bytes"],
            "cached": path != built,
            "warnings": manifest.get("warnings", []),
            "artifact_sha256": manifest.get("artifact_sha256"),
        }
    test_result = None
    summary = os.path.join(out, "test_result.json")
    if os.path.exists(summary):
        with open(summary) as handle:
            test_result = json.load(handle)
    return {
        "pack_ref": environ["PACK_REF"],
        "pack_version": environ["PACK_VERSION"],
        "archive": environ["ARCHIVE_URI"],
        "environments": environments,
        "duration_ms": now_ms() - int(environ["BUILD_STARTED_MS"]),
        "test_result": test_result,
    }


MAX_ANSWER_FAILED_TESTS = 25
MAX_ANSWER_REQUIREMENTS = 25
MAX_ANSWER_SUITES = 10
MAX_ANSWER_MESSAGE_CHARS = 300


def task_answer(result: dict[str, Any]) -> dict[str, Any]:
    """What a build answers its task token with: ``result`` without its long lists, so that the
    state machine's payload stays small however many packs it builds. The installed distributions
    beyond the first few stay in the environment manifests (``package_count`` is exact); each test
    suite keeps its counts and its first failure, ``failed_tests`` its first names, the whole report
    stays at ``test_result.report``."""
    environments = {
        kind: {**env, "requirements_installed": env.get("requirements_installed", [])[:MAX_ANSWER_REQUIREMENTS]}
        for kind, env in (result.get("environments") or {}).items()
    }
    test_result = result.get("test_result")
    if test_result:
        suites = []
        for suite in (test_result.get("suites") or [])[:MAX_ANSWER_SUITES]:
            first = [
                {**failure, "message": str(failure.get("message", ""))[:MAX_ANSWER_MESSAGE_CHARS]}
                for failure in (suite.get("failures") or [])[:1]
            ]
            names = (suite.get("failed_tests") or [])[:MAX_ANSWER_FAILED_TESTS]
            suites.append({**suite, "failures": first, "failed_tests": names})
        failed_tests = (test_result.get("failed_tests") or [])[:MAX_ANSWER_FAILED_TESTS]
        test_result = {**test_result, "suites": suites, "failed_tests": failed_tests}
    return {**result, "environments": environments, "test_result": test_result}


MAX_TASK_CAUSE_CHARS = 600


def short_cause(cause: str, report_uri: str = "") -> str:
    """A failure cause small enough for the state machine's payload (a failed build's item travels
    inline): its first line and the end of the rest, and where the whole cause is stored."""
    if len(cause) <= MAX_TASK_CAUSE_CHARS:
        return cause
    head, _, rest = cause.partition("\n")
    head = head[:200]
    where = f"\n(the whole report: {report_uri})" if report_uri else ""
    room = max(0, MAX_TASK_CAUSE_CHARS - len(head) - len(where) - 6)
    return f"{head}\n…{rest[-room:]}{where}"


def failure_report(pack_ref: str, cause: str) -> dict[str, Any]:
    """The stored report of a failed build (the whole cause; the task gets :func:`short_cause`)."""
    return {"pack_ref": pack_ref, "failed": True, "error_type": "BuildError", "error": cause}


def reference_answer(result: dict[str, Any], report_uri: str, content: bytes) -> dict[str, Any]:
    """The task answer when the whole result (``content``) is stored at ``report_uri`` (a
    ``BuildReference``). Its sha256 travels with the answer, through this build's own task token:
    whoever reads the report checks it, so another build (another pack's install scripts or tests
    run with the same role) cannot pass off a forged result."""
    return {
        "pack_ref": result["pack_ref"],
        "pack_version": result.get("pack_version"),
        "report": report_uri,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def unique_report_key(report_key: str, unique: str) -> str:
    """Where one build stores its result: the item's key with this build's id, so a build of an
    earlier attempt can never overwrite the result of the attempt that answered."""
    return f"{report_key.removesuffix('.json')}-{re.sub(r'[^A-Za-z0-9-]', '-', unique)[-40:]}.json"


_NOISE = re.compile(r"^\[Container\] .*(Running command |Entering phase )")


def log_excerpt(lines: list[str], *, max_lines: int = 40, max_chars: int = 3000) -> str:
    """The last lines of a build log, where a failed build says why (without CodeBuild's
    "Running command" and "Entering phase" lines: the failing command is named by its own
    "Command did not exit successfully" line)."""
    kept = [line.rstrip() for line in lines if line.strip() and not _NOISE.match(line)][-max_lines:]
    text = "\n".join(kept)
    return text[-max_chars:]


def failure_cause(environ: dict[str, str], log_lines: list[str]) -> str:
    """What a build that failed in its build phase answers its task token with."""
    timed_out = any("exceeded the build timeout" in line for line in log_lines)
    what = "ran out of time" if timed_out else "failed"
    return (
        f"BUILD_FAILED: the environment build of {environ.get('PACK_REF', '?')} {what} in phase BUILD "
        f"(build {environ.get('CODEBUILD_BUILD_ID', '?')}). Last lines of the build log:\n{log_excerpt(log_lines)}"
    )
