"""Plan and lock from the CLI: in-process on the local stack (with its API function's settings),
through ``POST /packs/plan`` on a deployed stack's API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from attune_packs.models import InstallRequest

T = TypeVar("T")


def _in_stack(backend: Any, work: Callable[..., T]) -> T:
    from attune_packs import wiring

    environment = getattr(backend, "service_environment", None)
    if environment is None:
        raise RuntimeError("this backend runs plans through the API: give --api-url")
    with wiring.function_environment(environment):
        return work(wiring.object_store(), wiring.pack_table(), wiring.settings(), wiring.stored_indices())


def plan(backend: Any, request: InstallRequest) -> dict[str, Any]:
    if hasattr(backend, "plan"):
        return dict(backend.plan(request))
    from attune_packs.services.plan import plan_install

    def work(store: Any, table: Any, settings: Any, indices: Any) -> dict[str, Any]:
        return plan_install(request, store, table, settings, stored_indices=indices).model_dump(mode="json")

    return _in_stack(backend, work)


def lock(backend: Any, request: InstallRequest, compile_python: Any = None) -> dict[str, Any]:
    if hasattr(backend, "lock"):
        return dict(backend.lock(request))
    from attune_packs.services.lockfile import lock_install

    def work(store: Any, table: Any, settings: Any, indices: Any) -> dict[str, Any]:
        lockfile = lock_install(request, store, table, settings, stored_indices=indices, compile_python=compile_python)
        return lockfile.model_dump(mode="json")

    return _in_stack(backend, work)


def verify_locked(backend: Any, request: InstallRequest, document: dict[str, Any], compile_python: Any = None) -> Any:
    """Check the lock against what the sources give now (``LockMismatchError`` naming what moved);
    returns the install request that installs exactly the lock."""
    from attune_packs.services.lockfile import locked_install_request

    def work(store: Any, table: Any, settings: Any, indices: Any) -> InstallRequest:
        return locked_install_request(
            request, document, store, table, settings, stored_indices=indices, compile_python=compile_python
        )

    return _in_stack(backend, work)


def installation_lock(backend: Any, request: InstallRequest, installation_id: str, output: dict[str, Any]) -> Any:
    """The lock of a finished installation (Python pins with hashes, by uv), stored with it; over
    the API, the lock the stack keeps with it."""
    if hasattr(backend, "installation_lock"):
        return backend.installation_lock(installation_id)
    from attune_packs.services.lockfile import lock_of_installation, store_installation_lock, uv_compile

    def work(store: Any, table: Any, settings: Any, _indices: Any) -> dict[str, Any]:
        lock = lock_of_installation(request, output, store, table, settings, compile_python=uv_compile)
        store_installation_lock(store, installation_id, lock)
        return lock.model_dump(mode="json")

    return _in_stack(backend, work)
