"""Register stage: record each pack and its components in the registry table.

Four steps, one module each: :mod:`.plan` (every check and decision before writing; the test
gate in :mod:`.gate`), :mod:`.write` (stage the registration's items), :mod:`.flip` (make it
current in one transaction) and :mod:`.prune` (delete what nothing references any more);
:mod:`.run` registers a batch of packs with them. See :mod:`.run` for the whole story.
"""

from attune_packs.data.packs import garbage_marker
from attune_packs.services.stages.register.flip import FlipOutcome, flip_pointer
from attune_packs.services.stages.register.gate import compact_test_result, gate_tests
from attune_packs.services.stages.register.plan import (
    check_dependencies,
    check_dependents,
    component_counts,
    decide_version,
    same_version,
)
from attune_packs.services.stages.register.policy import Clock, RegistryPolicy, new_registration_id, utc_now
from attune_packs.services.stages.register.prune import collect_garbage, is_stale, next_retained
from attune_packs.services.stages.register.run import register_packs
from attune_packs.services.stages.register.write import Registration, registration_items

__all__ = [
    "Registration",
    "Clock",
    "FlipOutcome",
    "RegistryPolicy",
    "check_dependencies",
    "check_dependents",
    "collect_garbage",
    "compact_test_result",
    "component_counts",
    "decide_version",
    "flip_pointer",
    "garbage_marker",
    "gate_tests",
    "is_stale",
    "new_registration_id",
    "next_retained",
    "register_packs",
    "registration_items",
    "same_version",
    "utc_now",
]
