"""Stage reports: whole stage responses kept in S3 so that state machine payloads stay small.

Run by the state machine, a stage gets a ``report_key`` (``reports/installs/<installation>/<name>.json``):
it stores its whole response there and answers only what the state machine reads (the model's
``INLINE_FIELDS``) plus ``report``. Whoever shows an installation (the CLI, ``GET
/packs/installs/{id}``) puts the whole responses back with :func:`expand_installation_output`, so
readers see the same document however many packs an installation had.
"""

from __future__ import annotations

import re
from typing import Any

from attune_packs.adapters.s3 import ObjectStore, S3Location
from attune_packs.models import Reported, ReportedResponse

INSTALLATION_REPORTS = "reports/installs/{installation_id}/"
_ROUND = re.compile(r"-(\d+)\.json$")


def answer(response: ReportedResponse, request: Reported, store: ObjectStore) -> dict[str, Any]:
    """The stage's answer: the whole response, or its inline summary once it is stored."""
    if not request.report_key:
        return response.model_dump(mode="json")
    whole = response.model_copy(update={"report": S3Location(store.bucket, request.report_key).uri})
    store.put_bytes(request.report_key, whole.model_dump_json().encode(), "application/json")
    body = whole.model_dump(mode="json")
    return {name: body[name] for name in (*sorted(type(response).INLINE_FIELDS), "report")}


def installation_reports(store: ObjectStore, installation_id: str) -> dict[str, Any]:
    """Every stage report of one installation, by name (``download``, ``dependencies-0``…)."""
    prefix = INSTALLATION_REPORTS.format(installation_id=installation_id)
    reports = {}
    for key in store.list_keys(prefix):
        name = key.removeprefix(prefix).removesuffix(".json")
        reports[name] = store.get_json(S3Location(store.bucket, key))
    return reports


def expand_installation_output(output: dict[str, Any] | None, store: ObjectStore) -> dict[str, Any] | None:
    """The execution output with each stage's whole response in place of its summary: ``download``
    (what was asked for), ``dependency_download`` (every dependency round together),
    ``dependencies`` (the last round: the whole batch) and ``register``."""
    if not output or not output.get("installation_id"):
        return output
    reports = installation_reports(store, str(output["installation_id"]))
    if not reports:
        return output
    expanded = dict(output)
    if "download" in reports:
        expanded["download"] = reports["download"]
    rounds = sorted((name for name in reports if name.startswith("dependency-download-")), key=_round)
    if rounds:
        merged: dict[str, Any] = {"downloaded_packs": [], "failed_packs": [], "reports": []}
        for name in rounds:
            merged["downloaded_packs"] += reports[name]["downloaded_packs"]
            merged["failed_packs"] += reports[name]["failed_packs"]
            merged["reports"].append(reports[name]["report"])
        merged["success_count"] = len(merged["downloaded_packs"])
        merged["failure_count"] = len(merged["failed_packs"])
        expanded["dependency_download"] = merged
    resolutions = sorted((name for name in reports if name.startswith("dependencies-")), key=_round)
    if resolutions:
        expanded["dependencies"] = reports[resolutions[-1]]
    if "register" in reports:
        expanded["register"] = reports["register"]
    return expanded


def _round(name: str) -> int:
    match = _ROUND.search(f"{name}.json")
    return int(match.group(1)) if match else 0
