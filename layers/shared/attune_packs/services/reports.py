"""Stage reports: whole stage responses kept in S3 so that state machine payloads stay small.

Run by the state machine, a stage gets a ``report_key`` (``reports/installs/<installation>/<name>.json``):
it stores its whole response there and answers only what the state machine reads (the model's
``INLINE_FIELDS``) plus ``report``; an environment build answers its task token with a reference
to its stored result. Whoever shows an installation (the CLI, ``GET /packs/installs/{id}``) puts the
whole responses back with :func:`expand_installation_output`, so readers see every pack's result
however many packs an installation had.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.errors import SourceError, TransientError
from attune_packs.models import MAX_DEPENDENCY_ROUNDS, Reported, ReportedResponse
from attune_packs.s3_uri import S3Location, parse_s3_uri

INSTALLATION_REPORTS = "reports/installs/{installation_id}/"
MAX_REPORT_BYTES = 64 * 2**20


def read_verified(store: ObjectStore, uri: str, sha256: str, max_bytes: int = MAX_REPORT_BYTES) -> Any:
    """The JSON document at ``uri`` whose bytes have this sha256; a ``SourceError`` when they do not
    (another writer replaced it) or it is too large; ``SourceGoneError`` when it is missing."""
    location = parse_s3_uri(uri)
    with store.open(location) as body:
        content = body.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise SourceError(f"{uri} is larger than {max_bytes} bytes", error_code="REPORT_TOO_LARGE")
    if hashlib.sha256(content).hexdigest() != sha256:
        raise SourceError(
            f"{uri} is not the report its build answered with (sha256 differs)", error_code="REPORT_TAMPERED"
        )
    return json.loads(content)


def answer(response: ReportedResponse, request: Reported, store: ObjectStore) -> dict[str, Any]:
    """The stage's answer: the whole response, or its inline summary once it is stored."""
    if not request.report_key:
        return response.model_dump(mode="json")
    whole = response.model_copy(update={"report": S3Location(store.bucket, request.report_key).uri})
    store.put_bytes(request.report_key, whole.model_dump_json().encode(), "application/json")
    body = whole.model_dump(mode="json")
    return {name: body[name] for name in (*sorted(type(response).INLINE_FIELDS), "report")}


def expand_installation_output(output: dict[str, Any] | None, store: ObjectStore) -> dict[str, Any] | None:
    """The execution output with each stage's whole response in place of its summary: ``download``
    (what was asked for), ``dependency_download`` (every dependency round together),
    ``dependencies`` (the last round: the whole batch), ``builds`` and ``register``. Reports are
    read at the keys this installation wrote (never by listing a prefix); one that cannot be read
    leaves its summary in place and is named in ``reports_unavailable``."""
    if not output or not output.get("installation_id"):
        return output
    prefix = INSTALLATION_REPORTS.format(installation_id=output["installation_id"])
    rounds = int(output.get("dependency_rounds") or 0)
    expanded = dict(output)
    unavailable: list[str] = []

    def read(name: str, *, optional: bool = False) -> Any:
        location = S3Location(store.bucket, f"{prefix}{name}.json")
        try:
            if optional and store.head(location) is None:
                return None
            report = store.get_json(location, MAX_REPORT_BYTES)
        except Exception:  # noqa: BLE001 - showing an installation must not fail on one report
            report = None
        if isinstance(report, dict):
            return report
        unavailable.append(name)
        return None

    if isinstance(output.get("download"), dict) and output["download"].get("report"):
        # when unreadable, not the summary: after dependency rounds $.download is the last round's
        expanded["download"] = read("download") or {"report": output["download"]["report"]}
    # Round n downloads, then round n + 1 resolves again; a last round that downloaded nothing
    # ends the loop without a next resolution, so its report may exist or not.
    dependency_rounds = []
    if "dependencies" in output:  # else it ended before the dependencies stage
        dependency_rounds = [read(f"dependency-download-{n}", optional=n == rounds) for n in range(rounds + 1)]
    found = [r for r in dependency_rounds if isinstance(r, dict)]
    if found:
        expanded["dependency_download"] = {
            "downloaded_packs": [p for r in found for p in r.get("downloaded_packs", [])],
            "failed_packs": [f for r in found for f in r.get("failed_packs", [])],
            "success_count": sum(len(r.get("downloaded_packs", [])) for r in found),
            "failure_count": sum(len(r.get("failed_packs", [])) for r in found),
            "reports": [r.get("report") for r in found],
        }
    if isinstance(output.get("dependencies"), dict) and output["dependencies"].get("report"):
        expanded["dependencies"] = read(f"dependencies-{rounds}") or output["dependencies"]
    if "builds" in output:
        expanded["builds"] = [_build(b, store, unavailable) for b in output["builds"] or []]
    if isinstance(output.get("register"), dict) and output["register"].get("report"):
        expanded["register"] = read("register") or output["register"]
    if unavailable:
        expanded["reports_unavailable"] = unavailable
    return expanded


def unfinished_installation_output(
    installation_id: str, store: ObjectStore, max_rounds: int = MAX_DEPENDENCY_ROUNDS, *, strict: bool = False
) -> dict[str, Any] | None:
    """What the stages of an installation that failed (or was stopped) had reported before: an
    execution that fails has no output, but its stage reports are in S3. None when there are none.
    When S3 cannot be read: None (the execution's own error is shown alone), or with ``strict``
    (the reports are all there is) a retriable ``TransientError``."""
    prefix = INSTALLATION_REPORTS.format(installation_id=installation_id)
    names = ["download", "register"]
    names += [f"dependencies-{n}" for n in range(max_rounds + 1)]
    names += [f"dependency-download-{n}" for n in range(max_rounds + 1)]
    try:
        present = [name for name in names if store.head(S3Location(store.bucket, f"{prefix}{name}.json")) is not None]
    except Exception as exc:  # noqa: BLE001 - the reports cannot be looked at
        if strict:
            raise TransientError(f"the stage reports of installation {installation_id} cannot be read now") from exc
        return None
    if not present:
        return None
    resolutions = sorted(int(n.rsplit("-", 1)[1]) for n in present if n.startswith("dependencies-"))
    summary: dict[str, Any] = {
        "installation_id": installation_id,
        "status": "UNFINISHED",
        "dependency_rounds": resolutions[-1] if resolutions else 0,
    }
    stages = {"download": "download", "register": "register"}
    if resolutions:
        stages["dependencies"] = f"dependencies-{resolutions[-1]}"
    for key, name in stages.items():
        if name in present:
            summary[key] = {"report": S3Location(store.bucket, f"{prefix}{name}.json").uri}
    expanded = expand_installation_output(summary, store) or summary
    for key in ("download", "dependencies", "register"):
        if isinstance(expanded.get(key), dict) and set(expanded[key]) == {"report"}:
            expanded.pop(key)  # announced above but unreadable
    return expanded


def _build(build: Any, store: ObjectStore, unavailable: list[str]) -> Any:
    """A build's whole result; for a failed build, its whole failure report when one was stored
    (a build that failed before it could store one has only its short cause)."""
    if not isinstance(build, dict) or not build.get("report"):
        return build
    try:
        location = parse_s3_uri(str(build["report"]))
        if build.get("failed"):  # the whole cause, when the build could store it
            if store.head(location) is None:
                return build
            report = store.get_json(location, MAX_REPORT_BYTES)
            return {**build, "error": report["error"]} if isinstance(report, dict) and "error" in report else build
        if not build.get("sha256"):
            raise SourceError(f"{build['report']} comes without its sha256", error_code="REPORT_TAMPERED")
        result = read_verified(store, str(build["report"]), str(build["sha256"]))
        return result if isinstance(result, dict) else build
    except Exception:  # noqa: BLE001 - showing an installation must not fail on one report
        unavailable.append(f"build-{build.get('pack_ref')}")
        return build
