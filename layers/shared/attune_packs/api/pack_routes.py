"""The registry: installed packs, their components, updates, removal, rollback and test history.

Registered after the other route modules: ``/packs/{ref}/{component_type}`` would otherwise
shadow the literal routes below ``/packs/`` (powertools matches in registration order).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from attune_packs import wiring
from attune_packs.api.app import PREFIX, app, data, principal
from attune_packs.api.openapi import responses
from attune_packs.errors import NotFoundError
from attune_packs.models import COMPONENT_TYPES, RemovedPack, RolledBackPack
from attune_packs.services import catalog, pack_tests
from attune_packs.services.pack_updates import PackUpdate, update_pack


class Pack(BaseModel):
    """An installed pack's current record (Attune's PackResponse names where they apply)."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    ref: str
    version: str
    label: str | None = None
    description: str | None = None


class PackDetail(Pack):
    components: dict[str, list[dict[str, Any]]] = Field(description="one list per component type")
    history: list[dict[str, Any]]
    dependents: list[str]


def _plain_data(payload: Any, **extra: Any) -> Response[Any]:
    """:func:`data`'s answer, serialised here as the resolver's serializer writes it: the registry's
    records are plain JSON values already, which the resolver's response validation would walk one
    by one (thousands of components for a large pack) before serialising them the same way."""
    body = json.dumps({"data": payload, **extra}, default=str, separators=(",", ":"))
    return Response(status_code=200, content_type="application/json", body=body)


class TestRunStarted(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    execution: pack_tests.PackTestExecution
    status_url: str


@app.get(f"{PREFIX}/packs", responses=responses(200, list[Pack], "one page of installed packs, by ref"))
def list_packs(
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response[Any]:
    """Pages by number (``page``, ``page_size``: every page reads every pack, to count them), or
    with ``limit`` and ``cursor`` (a page reads only its own packs; ``pagination.next_cursor``, if
    not null, is the ``cursor`` of the next page)."""
    if limit is not None or cursor is not None:
        chunk = catalog.list_packs_page(wiring.pack_table(), limit=limit or 100, cursor=cursor)
        return _plain_data(chunk["packs"], pagination={"limit": limit or 100, "next_cursor": chunk["next_cursor"]})
    packs = sorted(catalog.list_packs(wiring.pack_table()), key=lambda p: p["ref"])
    start = (page - 1) * page_size
    return _plain_data(
        packs[start : start + page_size],
        pagination={
            "page": page,
            "page_size": page_size,
            "total": len(packs),
            "pages": max(1, -(-len(packs) // page_size)),
        },
    )


@app.get(f"{PREFIX}/packs/<ref>", responses=responses(200, PackDetail, "the installed pack"))
def show_pack(ref: str) -> Response[Any]:
    return _plain_data(
        catalog.with_manifest_read_back(catalog.show_pack(wiring.pack_table(), ref), wiring.object_store)
    )


@app.put(f"{PREFIX}/packs/<ref>", responses=responses(200, PackDetail, "the pack, updated"))
def update(ref: str, body: PackUpdate) -> Response[Any]:
    """Label, description, enabled, and config (validated against the pack's conf_schema)."""
    return data(update_pack(wiring.pack_table(), wiring.object_store(), ref, body, updated_by=principal()))


@app.delete(f"{PREFIX}/packs/<ref>", responses=responses(200, RemovedPack, "the pack's pointer is removed"))
def remove_pack(ref: str, force: Annotated[bool, Query()] = False) -> Response[Any]:
    from attune_packs.services import lifecycle

    return data(lifecycle.remove_pack(wiring.pack_table(), ref, force=force, requested_by=principal()))


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    version: str | None = Field(default=None, max_length=64)
    force: bool = False


@app.post(f"{PREFIX}/packs/<ref>/rollback", responses=responses(200, RolledBackPack, "the pack, rolled back"))
def rollback_pack(ref: str, body: RollbackBody) -> Response[Any]:
    from attune_packs.services import lifecycle

    result = lifecycle.rollback_pack(
        wiring.pack_table(), wiring.object_store(), ref, body.version, force=body.force, requested_by=principal()
    )
    return data(result)


def _starter() -> Any:
    settings = wiring.settings()
    return wiring.build_starter() if settings.codebuild_project else None


@app.get(
    f"{PREFIX}/packs/<ref>/tests", responses=responses(200, pack_tests.TestHistoryPage, "test executions, newest first")
)
def test_history(
    ref: str, page: Annotated[int, Query(ge=1, le=100_000)] = 1, page_size: Annotated[int, Query(ge=1, le=100)] = 20
) -> Response[Any]:
    executions = pack_tests.history(wiring.pack_table(), wiring.object_store(), ref, starter=_starter())
    return data(pack_tests.page(executions, ref, page, page_size))


@app.get(
    f"{PREFIX}/packs/<ref>/tests/latest",
    responses=responses(200, pack_tests.PackTestExecution, "the newest test execution"),
)
def latest_test(ref: str) -> Response[Any]:
    executions = pack_tests.history(wiring.pack_table(), wiring.object_store(), ref, starter=_starter())
    if not executions:
        raise NotFoundError(f"no test execution of {ref!r} is recorded")
    return data(executions[0])


@app.get(
    f"{PREFIX}/packs/<ref>/tests/<execution_id>",
    responses=responses(200, pack_tests.PackTestExecution, "one test execution (poll a re-run here)"),
)
def test_execution(ref: str, execution_id: str) -> Response[Any]:
    executions = pack_tests.history(wiring.pack_table(), wiring.object_store(), ref, starter=_starter())
    found = next((e for e in executions if e.id == execution_id), None)
    if found is None:
        raise NotFoundError(f"no test execution {execution_id!r} of {ref!r}")
    return data(found)


@app.post(
    f"{PREFIX}/packs/<ref>/test",
    responses=responses(202, TestRunStarted, "the re-run started: poll status_url"),
)
def rerun_tests(ref: str) -> Response[Any]:
    """Run the installed version's tests again in its built environments (a CodeBuild build)."""
    execution = pack_tests.rerun(
        wiring.pack_table(),
        wiring.object_store(),
        wiring.build_starter(),
        ref,
        architecture=wiring.settings().target_architecture,
        started_by=principal(),
    )
    url = f"{PREFIX}/packs/{ref}/tests/{execution.id}"
    return data(TestRunStarted(execution=execution, status_url=url), status=202)


@app.get(f"{PREFIX}/components/<component_type>")
def list_components(
    component_type: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response[Any]:
    return _plain_data(catalog.list_components(wiring.pack_table(), component_type, limit=limit, cursor=cursor))


@app.get(f"{PREFIX}/packs/<ref>/<component_type>")
def pack_components(ref: str, component_type: str) -> Response[Any]:
    if component_type not in COMPONENT_TYPES:
        raise NotFoundError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    return data(catalog.show_pack(wiring.pack_table(), ref)["components"].get(component_type, []))
