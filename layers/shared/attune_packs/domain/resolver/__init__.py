"""Version resolution for pack dependencies, with backtracking (``resolvelib``, the resolver pip uses).

What the resolver is given:

* the **batch**: packs this installation brings (their archives are stored); each is fixed at its
  version and is a root of the resolution;
* the **installed** packs (the registry table's ``CURRENT`` items: ``version`` and
  ``dependencies``), looked up by ref; they are kept as they are, unless ``force`` allows
  upgrading or changing them to a registry version;
* the **registry catalog**: the ordered indices, the first listing a ref winning; an entry's
  optional ``dependencies`` let the resolver look ahead before anything is downloaded;
* the **platform**: the Attune / StackStorm version packs are installed into, and the Python and
  Node.js versions environments are built for.

What it answers (:class:`Resolution`): the version chosen for every pack that has to be fetched
and the index entry it comes from, an install order (dependencies first) over the batch and the
chosen packs, and the conflicts, each with the chain of requirements leading to it and a message
a person can act on. A conflict blocks the batch packs it comes from (the nearest batch packs up
the requirement chain); the resolution is then run again without them, so one impossible pack
never stops the others. Cycles are conflicts too (install order needs dependencies first), but a
registry version that closes one is first ruled out in favour of another version.

Every search is bounded (see :class:`~attune_packs.domain.resolver.search.Search`): resolvelib
alone first; if it backtracks far more than the packs involved, again after pruning versions that
can be in no solution; if even that thrashes, batch packs join one at a time. ``ResolverLimits`` caps packs
and rounds overall (``DEPENDENCY_LIMIT``).

Pure: no AWS, no network. The caller passes look-up functions.

Modules:

* :mod:`~attune_packs.domain.resolver.model`: inputs, outputs, and the candidates and requirements
  resolvelib searches over;
* :mod:`~attune_packs.domain.resolver.platform`: whether a pack runs on the target platform;
* :mod:`~attune_packs.domain.resolver.provider`: the resolvelib provider (candidates, pruning) and
  reporter;
* :mod:`~attune_packs.domain.resolver.search`: :func:`resolve` and the bounded resolution loop;
* :mod:`~attune_packs.domain.resolver.explanation`: conflicts from an impossible resolution;
* :mod:`~attune_packs.domain.resolver.cycles`: install order and dependency cycles.
"""

from attune_packs.domain.install_order import topological_order
from attune_packs.domain.resolver.model import (
    Choice,
    InstalledPack,
    PackNode,
    PlatformTarget,
    Resolution,
    ResolverLimits,
    constraint_of,
)
from attune_packs.domain.resolver.platform import platform_problems
from attune_packs.domain.resolver.search import resolve

__all__ = [
    "Choice",
    "InstalledPack",
    "PackNode",
    "PlatformTarget",
    "Resolution",
    "ResolverLimits",
    "constraint_of",
    "platform_problems",
    "resolve",
    "topological_order",
]
