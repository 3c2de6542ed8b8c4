"""Data access: the one owner of the registry table's key schema.

One module per aggregate builds every key, item, condition and index query of it:
:mod:`~attune_packs.data.packs` (the pointer ``CURRENT``, versions, components, dependents,
staged and garbage markers, the removal record), :mod:`~attune_packs.data.installations`,
:mod:`~attune_packs.data.tokens` and :mod:`~attune_packs.data.indices` (registry indices).
:mod:`~attune_packs.data.operations` is the vocabulary they speak to the table with (the
operations of a transaction, conditions, the :class:`~attune_packs.data.operations.PackTable`
port). Services speak in domain terms ("the current version of pack X"); no key attribute name
or key value is written anywhere else (``tests/unit/test_key_schema_ownership.py``).
"""
