"""Plan and lock (docs/lockfile.md): ``POST /packs/plan``, ``POST /packs/lock``, the ``lock`` of
``POST /packs/install`` and ``GET /packs/installs/{id}/lock``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from attune_packs import wiring
from attune_packs.api.app import PREFIX, app, data
from attune_packs.api.install_routes import InstallBody
from attune_packs.edge import parse_request
from attune_packs.errors import InvalidRequestError
from attune_packs.models import InstallRequest

_NOT_STAGE_FIELDS = {"packs", "source", "skip_deps", "started_by", "lock", "locked", "locked_requirements"}


def _no_pins(body: InstallBody) -> None:
    """Pins come from a verified lockfile only: a client sends ``lock``."""
    if body.started_by is not None:
        raise InvalidRequestError(
            "started_by is set by the installer (the authenticated principal); put a label in client_label",
            details=[{"field": "started_by", "problem": "set by the installer"}],
        )
    for name in ("locked", "locked_requirements"):
        if getattr(body, name) is not None:
            raise InvalidRequestError(
                f"invalid request: {name}: set from a verified lockfile; send the lockfile as lock",
                details=[{"field": name, "problem": "send lock instead"}],
            )


def plan_request(body: InstallBody) -> InstallRequest:
    _no_pins(body)
    packs = [*body.packs, *([body.source] if body.source else [])]
    if not packs and body.lock is not None:
        from attune_packs.domain.lockfile import parse_lockfile

        packs = parse_lockfile(body.lock).requested_sources()
    if not packs:
        raise InvalidRequestError("give packs[] or source", details=[{"field": "packs", "problem": "empty"}])
    fields = body.model_dump(exclude=_NOT_STAGE_FIELDS)
    if body.skip_deps is not None:
        fields["skip_dependencies"] = body.skip_deps
    return parse_request(InstallRequest, {"packs": packs, **fields})


def install_request(body: InstallBody) -> InstallRequest:
    """The request ``POST /packs/install`` starts; with ``lock``, verified now (synchronously,
    bounded as a plan: LOCK_MISMATCH names what moved) and carrying the lock's pins."""
    request = plan_request(body)
    if body.lock is None:
        return request
    from attune_packs.services.lockfile import locked_install_request

    return locked_install_request(
        request,
        body.lock,
        wiring.object_store(),
        wiring.pack_table(),
        wiring.settings(),
        stored_indices=wiring.stored_indices(),
    )


@app.post(f"{PREFIX}/packs/plan")
def plan(body: InstallBody) -> Response[dict[str, Any]]:
    """What ``POST /packs/install`` with this body would do, and no side effect. Synchronous:
    bounded by the body's ``timeout`` for all downloads together (API Gateway answers within 29 s,
    so keep it under that), at most MAX_PACKS_PER_INSTALLATION packs and the configured number of
    dependency rounds."""
    from attune_packs.services.plan import plan_install

    planned = plan_install(
        plan_request(body),
        wiring.object_store(),
        wiring.pack_table(),
        wiring.settings(),
        stored_indices=wiring.stored_indices(),
    )
    return data(planned)


@app.post(f"{PREFIX}/packs/lock")
def lock(body: InstallBody) -> Response[dict[str, Any]]:
    """The lockfile of what ``POST /packs/install`` with this body would install. Synchronous and
    bounded as ``/packs/plan``; where uv is not available (Lambda) a pack with Python requirements
    is ``LOCK_UNVERIFIABLE``: lock with the CLI."""
    from attune_packs.services.lockfile import lock_install

    locked = lock_install(
        plan_request(body),
        wiring.object_store(),
        wiring.pack_table(),
        wiring.settings(),
        stored_indices=wiring.stored_indices(),
    )
    return data(locked)


@app.get(f"{PREFIX}/packs/installs/<installation_id>/lock")
def installation_lockfile(installation_id: str) -> Response[dict[str, Any]]:
    """The lockfile of a finished installation (reports/installs/<id>/lock.json)."""
    from attune_packs.services import installations
    from attune_packs.services.lockfile import installation_lock, read_installation_lock

    status = installations.installation_status(installation_id, wiring.executions(), wiring.object_store())
    installation_lock(installation_id, status, wiring.object_store(), wiring.pack_table(), wiring.settings())
    return Response(
        status_code=200,
        content_type="application/json",
        body=read_installation_lock(wiring.object_store(), installation_id),
    )
