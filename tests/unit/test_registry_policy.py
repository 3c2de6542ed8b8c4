"""The registry policy refuses settings that would break a registration later, when it is made."""

from __future__ import annotations

import pytest

from attune_packs.services.stages.register.policy import TRANSACTION_BYTES, RegistryPolicy


def test_the_current_version_is_always_kept() -> None:
    with pytest.raises(ValueError, match="keep_versions"):
        RegistryPolicy(keep_versions=0)


def test_a_registration_written_in_the_flip_leaves_room_for_the_flips_own_items() -> None:
    policy = RegistryPolicy()
    assert policy.inline_registration_bytes + 3 * policy.max_item_bytes <= TRANSACTION_BYTES
    RegistryPolicy(inline_registration_bytes=0)  # always staged: allowed
    with pytest.raises(ValueError, match="inline_registration_bytes"):
        RegistryPolicy(inline_registration_bytes=TRANSACTION_BYTES - 2 * policy.max_item_bytes)
    with pytest.raises(ValueError, match="inline_registration_bytes"):
        RegistryPolicy(inline_registration_bytes=-1)
