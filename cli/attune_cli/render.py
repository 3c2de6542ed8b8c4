"""What the CLI shows a person: progress while an installation runs, and readable summaries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from attune_cli.backends import ExecutionResult

STAGES = {
    "DownloadPacks": "download",
    "ResolveDependencies": "dependencies",
    "DownloadDependencies": "download dependencies",
    "BuildEnvironments": "build environments",
    "BuildPackEnvironment": "build",
    "RegisterPacks": "register",
}


class Progress:
    """Prints one line per stage started and finished, from the execution's history."""

    def __init__(self, *, enabled: bool, stream: TextIO) -> None:
        self.enabled = enabled
        self.stream = stream
        self._entered: dict[str, datetime] = {}

    def _say(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def started(self, name: str) -> None:
        self._say(f"installation {name}")

    def event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            if name in STAGES:
                self._entered[name] = event["timestamp"]
                item = ""
                if name == "BuildPackEnvironment":
                    payload = json.loads(event["stateEnteredEventDetails"].get("input") or "{}")
                    ref = payload.get("item", {}).get("pack_ref")
                    item = f" {ref}" if ref else ""  # the status route's history carries no state input
                self._say(f"  → {STAGES[name]}{item}")
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if name in STAGES and name in self._entered:
                seconds = (event["timestamp"] - self._entered[name]).total_seconds()
                self._say(f"  ✓ {STAGES[name]} ({seconds:.1f}s)")
        elif kind in {"TaskFailed", "LambdaFunctionFailed", "ExecutionFailed"}:
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            self._say(f"  ✗ {details.get('error', 'failed')}: {str(details.get('cause', ''))[:300]}")


def install_report(installation_id: str, result: ExecutionResult) -> dict[str, Any]:
    output = result.output or {}
    download = output.get("download") or {}
    dependency_download = output.get("dependency_download") or {}
    dependencies = output.get("dependencies") or {}
    register = output.get("register") or {}
    environments, failed_environments, tests = [], [], []
    for build in output.get("builds") or []:
        if build.get("test_result"):
            tests.append({"pack_ref": build["pack_ref"], **build["test_result"]})
        if build.get("failed"):
            failed_environments.append(
                {"pack_ref": build["pack_ref"], "error_type": build.get("error_type"), "error": build.get("error")}
            )
            continue
        for kind, env in (build.get("environments") or {}).items():
            environments.append(
                {
                    "pack_ref": build["pack_ref"],
                    "kind": kind,
                    "env_hash": env["env_hash"],
                    "cached": env["cached"],
                    "package_count": env["package_count"],
                    "artifact": env["artifact"],
                }
            )
    failures = (
        [{"stage": "download", **f} for f in download.get("failed_packs", [])]
        + [{"stage": "download dependencies", **f} for f in dependency_download.get("failed_packs", [])]
        + [{"stage": "dependencies", **f} for f in dependencies.get("errors", [])]
        + [{"stage": "dependencies", "source": c["pack_ref"], **c} for c in dependencies.get("conflicts", [])]
        + [{"stage": "build", "source": f["pack_ref"], "error_code": "BUILD_FAILED", **f} for f in failed_environments]
        + [{"stage": "register", **f} for f in register.get("failed_packs", [])]
    )
    registered = register.get("registered_packs", [])
    registered_count = len(registered) or int((register.get("summary") or {}).get("success_count") or 0)
    if result.status == "UNKNOWN":  # the execution's history is gone: its reports say what was done
        outcome = "unknown"
    elif result.status != "SUCCEEDED" or output.get("status") != "COMPLETED" or not registered_count:
        outcome = "failed"
    else:
        outcome = "partial" if failures else "ok"
    return {
        "installation_id": installation_id,
        "status": result.status,
        "outcome": outcome,
        "downloaded": download.get("downloaded_packs", []) + dependency_download.get("downloaded_packs", []),
        "install_order": dependencies.get("install_order", []),
        "environments": environments,
        "tests": tests,
        "registered": registered,
        "failures": failures,
        "error": result.error,
        "cause": result.cause,
        "reports_unavailable": output.get("reports_unavailable", []),
    }


def install_summary(report: dict[str, Any]) -> str:
    lines = [f"Installation {report['installation_id']}: {report['status'].lower()} ({report['outcome']})"]
    if report["downloaded"]:
        lines.append("Downloaded:")
        for d in report["downloaded"]:
            note = "new" if d.get("stored") else "already stored"
            lines.append(f"  {d['pack_ref']} {d['pack_version']}  from {d['source']} ({d['source_type']}, {note})")
    if report["install_order"]:
        lines.append("Install order: " + " → ".join(report["install_order"]))
    if report["environments"]:
        lines.append("Environments:")
        for env in report["environments"]:
            how = "cache hit" if env["cached"] else "built"
            lines.append(
                f"  {env['pack_ref']} {env['kind']} {env['env_hash'][:12]}  {how}, {env['package_count']} package(s)"
            )
    if report.get("tests"):
        lines.append("Tests:")
        for t in report["tests"]:
            lines.append(f"  {t['pack_ref']}  {test_line(t)}")
    if report["registered"]:
        lines.append("Registered:")
        for r in report["registered"]:
            counts = ", ".join(f"{n} {k}" for k, n in r["components_registered"].items() if n)
            lines.append(f"  {r['pack_ref']} {r['pack_version']}  {r['status']}: {counts or 'no components'}")
    if report["failures"]:
        lines.append("Problems:")
        for f in report["failures"]:
            lines.append(
                f"  [{f['stage']}] {f.get('source') or f.get('pack_ref')}: {f.get('error_code')}: "
                f"{f.get('error') or f.get('message')}"
            )
    if report.get("reports_unavailable"):
        lines.append(
            "Some stage reports could not be read, their summaries are shown: "
            + ", ".join(report["reports_unavailable"])
        )
    if report["error"]:
        lines.append(f"Execution failed: {report['error']}: {report['cause']}")
    return "\n".join(lines)


def test_line(result: dict[str, Any]) -> str:
    """``passed: 4/4 passed ... (rate 1.00) in 1.2s`` (passed of the tests that ran: skipped ones
    did not) and the first failure's message, if any."""
    ran = result.get("ran")
    if not isinstance(ran, int):
        ran = int(result.get("passed") or 0) + int(result.get("failed") or 0)
    line = (
        f"{result.get('status')}: {result.get('passed', 0)}/{ran} passed"
        f", {result.get('failed', 0)} failed, {result.get('skipped', 0)} skipped"
        f" (rate {float(result.get('pass_rate') or 0):.2f}) in {int(result.get('duration_ms') or 0) / 1000:.1f}s"
    )
    for suite in result.get("suites") or []:
        for failure in suite.get("failures") or []:
            return f"{line}; first failure: {failure.get('name')}: {str(failure.get('message', ''))[:160]}"
    return line


def pack_table(packs: list[dict[str, Any]]) -> str:
    if not packs:
        return "no packs installed"
    rows = [("REF", "VERSION", "COMPONENTS", "DESCRIPTION")]
    for pack in sorted(packs, key=lambda p: p["ref"]):
        total = sum((pack.get("component_counts") or {}).values())
        rows.append((pack["ref"], str(pack["version"]), str(total), str(pack.get("description", ""))[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)


def pack_details(pack: dict[str, Any]) -> str:
    lines = [
        f"{pack['ref']} {pack['version']}  {pack.get('label') or ''}".rstrip(),
        f"  {pack.get('description', '')}",
        f"  archive: {pack.get('archive')} ({pack.get('checksum')})",
    ]
    if pack.get("dependencies"):
        lines.append("  dependencies: " + ", ".join(f"{k} {v}" for k, v in pack["dependencies"].items()))
    for kind, env in (pack.get("environments") or {}).items():
        lines.append(f"  {kind} environment: {env['artifact']} ({env['package_count']} packages)")
    if pack.get("test_result"):
        lines.append(f"  tests: {test_line(pack['test_result'])}")
    lines.extend(manifest_lines(pack))
    for kind, components in pack["components"].items():
        if components:
            lines.append(f"  {kind}:")
            for c in components:
                lines.append(f"    {c['ref']:<32} {c.get('description', '')[:60]}")
    lines.append(
        "  history: " + ", ".join(f"{h['version']} ({h.get('registered_at', '')[:19]})" for h in pack["history"])
    )
    return "\n".join(lines)


# pack.yaml fields pack_details shows in its own lines, or that repeat another field.
_SHOWN_ABOVE = {"ref", "name", "version", "label", "description", "dependencies", "config_schema"}
_VALUE_CHARACTERS = 200


def manifest_lines(pack: dict[str, Any]) -> list[str]:
    """pack.yaml's kept fields (``manifest``): whether it is a system pack, whether it is enabled,
    then every other field that is set, one a line (long values cut; ``--json`` has them whole)."""
    manifest = pack.get("manifest") or {}
    lines = []
    if pack.get("system") or manifest.get("system"):
        lines.append("  system pack: removing or replacing it needs --force")
    if pack.get("enabled", manifest.get("enabled", True)) is False:
        lines.append("  enabled: no")
    fields = [
        (key, value)
        for key, value in sorted(manifest.items())
        if key not in _SHOWN_ABOVE | {"system", "enabled"} and value not in (None, "", [], {})
    ]
    if fields:
        lines.append("  pack.yaml:")
        lines.extend(f"    {key}: {_value(value)}" for key, value in fields)
    document = pack.get("manifest_document")
    if isinstance(document, dict):
        kept = ", ".join(document.get("fields") or [])
        lines.append(f"    {kept}: kept in {document.get('ref')} ({document.get('bytes')} bytes)")
    return lines


def _value(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(", ", ": "), default=str)
    else:
        text = str(value)
    return text if len(text) <= _VALUE_CHARACTERS else text[: _VALUE_CHARACTERS - 1] + "…"


class _NotPlainJson(Exception):
    """A value json.dumps would encode differently than _indented does (or not at all)."""


def json_text(value: Any, *, default: Any = None) -> str:
    """``json.dumps(value, indent=2, default=default)``, the same text, for what JSON answers are made
    of (dicts with string keys, lists, strings, numbers, booleans, null) faster than the standard
    library's indenting encoder, which walks them in Python one generator step a value; anything
    else goes to json.dumps."""
    try:
        return _indented(value, "\n")
    except (_NotPlainJson, RecursionError):
        return json.dumps(value, indent=2, default=default)


def _indented(value: Any, newline: str) -> str:
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        parts = []
        for key, member in value.items():
            if type(key) is not str:
                raise _NotPlainJson
            parts.append(f"{_string(key)}: {_indented(member, inner)}")
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    if kind is list:
        if not value:
            return "[]"
        inner = newline + "  "
        return "[" + inner + ("," + inner).join([_indented(member, inner) for member in value]) + newline + "]"
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return json.dumps(value)  # repr, or NaN / Infinity as json writes them
    raise _NotPlainJson


_string = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
