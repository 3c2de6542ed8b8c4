"""Stage reports: whole stage responses kept in S3 so that state machine payloads stay small.

Run by the state machine, a stage gets a ``report_key`` (``reports/installs/<installation>/<name>.json``):
it stores its whole response there and answers only what the state machine reads (the model's
``INLINE_FIELDS``) plus ``report``; an environment build answers its task token with a reference
to its stored result. Whoever shows an installation (the CLI, ``GET /packs/installs/{id}``) puts the
whole responses back with :func:`expand_installation_output`, so readers see every pack's result
however many packs an installation had.
"""

from __future__ import annotations

from typing import Any

from attune_packs.adapters.s3 import ObjectStore, S3Location, parse_s3_uri
from attune_packs.errors import AttuneError
from attune_packs.models import Reported, ReportedResponse

INSTALLATION_REPORTS = "reports/installs/{installation_id}/"
MAX_REPORT_BYTES = 64 * 2**20


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
            return store.get_json(location, MAX_REPORT_BYTES)
        except (AttuneError, ValueError):
            unavailable.append(name)
            return None

    if isinstance(output.get("download"), dict) and output["download"].get("report"):
        expanded["download"] = read("download") or output["download"]
    # Round n downloads, then round n + 1 resolves again; a last round that downloaded nothing
    # ends the loop without a next resolution, so its report may exist or not.
    dependency_rounds = [read(f"dependency-download-{n}", optional=n == rounds) for n in range(rounds + 1)]
    if "dependencies" not in output:  # ended before the dependencies stage
        dependency_rounds = []
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
    installation_id: str, store: ObjectStore, max_rounds: int = 5
) -> dict[str, Any] | None:
    """What the stages of an installation that failed (or was stopped) had reported before: an
    execution that fails has no output, but its stage reports are in S3. None when there are none."""
    prefix = INSTALLATION_REPORTS.format(installation_id=installation_id)
    names = ["download", "register"]
    names += [f"dependencies-{n}" for n in range(max_rounds + 1)]
    names += [f"dependency-download-{n}" for n in range(max_rounds + 1)]
    present = [name for name in names if store.head(S3Location(store.bucket, f"{prefix}{name}.json")) is not None]
    if not present:
        return None
    resolutions = sorted(int(n.rsplit("-", 1)[1]) for n in present if n.startswith("dependencies-"))
    summary: dict[str, Any] = {
        "installation_id": installation_id,
        "status": "UNFINISHED",
        "dependency_rounds": resolutions[-1] if resolutions else 0,
    }
    for name, key in (("download", "download"), ("register", "register")):
        if name in present:
            summary[key] = {"report": S3Location(store.bucket, f"{prefix}{name}.json").uri}
    if resolutions:
        summary["dependencies"] = {"report": "s3://"}
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
        if build.get("failed"):
            if store.head(location) is None:
                return build
            return {**build, "error": store.get_json(location, MAX_REPORT_BYTES).get("error", build.get("error"))}
        return store.get_json(location, MAX_REPORT_BYTES)
    except (AttuneError, ValueError):
        unavailable.append(f"build-{build.get('pack_ref')}")
        return build
