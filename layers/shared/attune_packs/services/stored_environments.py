"""What a build-envs request can be answered with now: the packs whose environments (and test
reports) are already stored, and those that need a build (``POST /packs/build-envs`` answers the
first at once and hands the request to the asynchronous build when any pack is in the second)."""

from __future__ import annotations

from dataclasses import dataclass, field

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.errors import AttuneError, TransientError
from attune_packs.models import BuildEnvsRequest, BuildEnvsResponse, BuiltEnvironment, PackFailure
from attune_packs.services.stages.build_envs import prepare
from attune_packs.services.stored_packs import load_pack


@dataclass
class Lookup:
    built: list[BuiltEnvironment] = field(default_factory=list)
    failed: list[PackFailure] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # archives a build must still serve

    def response(self) -> BuildEnvsResponse:
        """What is known now, as the stage reports it (nothing built by this lookup)."""
        cache_hits = sum(len(b.environments) for b in self.built)
        return BuildEnvsResponse.of(self.built, self.failed, cache_hits=cache_hits, duration_ms=0)


def look_up(request: BuildEnvsRequest, store: ObjectStore, architecture: str) -> Lookup:
    found = Lookup()
    for path in dict.fromkeys(request.pack_paths):
        try:
            plan = prepare(load_pack(path, store), request, store, architecture)
        except TransientError:
            raise
        except AttuneError as exc:
            found.failed.append(
                PackFailure(source=path, error=exc.message, error_code=exc.error_code, details=exc.details)
            )
            continue
        if plan.needs_build:
            found.pending.append(path)
        else:
            found.built.append(plan.built(plan.cached, plan.test_result))
    return found
