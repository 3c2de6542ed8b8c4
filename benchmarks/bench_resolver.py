"""Dependency resolution against a generated 1,000-pack registry index (DESIGN §8: well under a second).

The index is generated deterministically: 1,000 packs in three layers (foundations, libraries,
integrations), 2 to 6 versions each, every version depending on 0 to 4 packs of lower layers with
the constraints pack authors write (``^1.2``, ``>=1.1.0``, ``~2.0``, ``*``, an exact pin now and
then), and newer majors of foundations breaking older dependents, so the resolver has to backtrack.
Each scenario installs a batch of top-layer packs onto a registry of installed packs and is timed
over several runs (median, min, max); the figures include building the catalog from the parsed
index, not parsing the JSON (reported separately).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from attune_packs.domain.registry_index import RegistryCatalog, RegistryIndex, parse_index
from attune_packs.domain.resolver import InstalledPack, PackNode, PlatformTarget, Resolution, resolve
from attune_packs.domain.semver import Version

PACKS = 1000
RUNS = 7
SEED = 20261129
LAYERS = ((0, 150), (150, 550), (550, PACKS))  # foundations, libraries, integrations


def _versions(rng: random.Random) -> list[tuple[int, int, int]]:
    major, minor, patch = rng.choice([0, 1, 1, 2]), rng.randint(0, 3), 0
    found = []
    for _ in range(rng.randint(2, 6)):
        found.append((major, minor, patch))
        step = rng.random()
        if step < 0.15:
            major, minor, patch = major + 1, 0, 0
        elif step < 0.6:
            minor, patch = minor + 1, 0
        else:
            patch += 1
    return found


def _constraint(rng: random.Random, versions: list[tuple[int, int, int]]) -> str:
    major, minor, patch = rng.choice(versions)
    roll = rng.random()
    if roll < 0.35:
        return f"^{major}.{minor}" if major else f">={major}.{minor}.0"
    if roll < 0.55:
        return f">={major}.{minor}.{patch}"
    if roll < 0.7:
        return f"~{major}.{minor}"
    if roll < 0.85:
        return "*"
    if roll < 0.93:
        return f">={major}.0.0,<{major + 1}.0.0"
    return f"={major}.{minor}.{patch}"


def generate_index(packs: int = PACKS, seed: int = SEED) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    versions = {f"pack{i:04d}": _versions(rng) for i in range(packs)}
    refs = list(versions)
    entries = []
    for layer, (start, end) in enumerate(LAYERS):
        for i in range(start, min(end, packs)):
            ref = refs[i]
            for version in versions[ref]:
                fan_out = 0 if layer == 0 and rng.random() < 0.6 else rng.randint(1, 2 + layer)
                lower = refs[: max(start, 1)] if layer else refs[:i]
                deps = {}
                for target in rng.sample(lower, min(fan_out, len(lower))):
                    deps[target] = _constraint(rng, versions[target])
                entries.append(
                    {
                        "ref": ref,
                        "version": "{}.{}.{}".format(*version),
                        "description": f"generated pack {ref}",
                        "dependencies": [f"{d}@{c}" for d, c in sorted(deps.items())],
                        "install_sources": [
                            {
                                "type": "archive",
                                "url": "archives/{}-{}.{}.{}.tar.gz".format(ref, *version),
                                "checksum": "sha256:" + f"{i:064x}",
                            }
                        ],
                    }
                )
    return {"name": "generated", "packs": entries}


def _batch(index: RegistryIndex, refs: list[str]) -> list[PackNode]:
    """Batch packs as the dependencies stage sees them: their newest versions, read from pack.yaml."""
    catalog = RegistryCatalog([("bench", index)])
    batch = []
    for ref in refs:
        found = catalog.lookup(ref)
        assert found is not None
        version, entry = found[1][0]
        batch.append(PackNode(ref, version, dict(entry.dependencies)))
    return batch


def _installed(index: RegistryIndex, count: int, rng: random.Random) -> dict[str, InstalledPack]:
    """Installed foundations (oldest version each), with their recorded dependencies."""
    catalog = RegistryCatalog([("bench", index)])
    installed = {}
    for i in rng.sample(range(LAYERS[0][1]), count):
        ref = f"pack{i:04d}"
        found = catalog.lookup(ref)
        assert found is not None
        version, entry = found[1][-1]
        installed[ref] = InstalledPack(ref, version, dict(entry.dependencies))
    return installed


def _time(run: Callable[[], Resolution]) -> tuple[list[float], Resolution]:
    times, result = [], run()
    for _ in range(RUNS):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return times, result


def main() -> None:
    document = json.dumps(generate_index()).encode()
    started = time.perf_counter()
    index = parse_index(document, source="generated")
    parse_seconds = time.perf_counter() - started
    versions = len(index.packs)
    edges = sum(len(e.dependencies) for e in index.packs)
    print(
        f"   index: {PACKS} packs, {versions} versions, {edges} dependency edges, {len(document) // 1024} KiB; "
        f"parsed in {parse_seconds * 1000:.0f} ms"
    )
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data, not secrets
    top = [f"pack{i:04d}" for i in range(LAYERS[2][0], PACKS)]
    scenarios = {
        "1 integration, nothing installed": (_batch(index, rng.sample(top, 1)), {}, False),
        "10 integrations, nothing installed": (_batch(index, rng.sample(top, 10)), {}, False),
        "50 integrations, nothing installed": (_batch(index, rng.sample(top, 50)), {}, False),
        "10 integrations, 60 foundations installed": (
            _batch(index, rng.sample(top, 10)),
            _installed(index, 60, rng),
            False,
        ),
        "10 integrations, 60 installed, force": (_batch(index, rng.sample(top, 10)), _installed(index, 60, rng), True),
    }
    target = PlatformTarget(Version.parse("3.9.0"))
    worst = 0.0
    for name, (batch, installed, force) in scenarios.items():

        def run(batch: list[PackNode] = batch, installed: dict = installed, force: bool = force) -> Resolution:
            catalog = RegistryCatalog([("bench", index)])
            return resolve(batch, installed=installed.get, catalog=lambda: catalog, force=force, target=target)

        times, result = _time(run)
        median = statistics.median(times)
        worst = max(worst, median)
        print(
            f"   {name:<44} median {median * 1000:7.1f} ms (min {min(times) * 1000:.1f}, max "
            f"{max(times) * 1000:.1f}); {len(result.chosen)} chosen, {len(result.install_order)} ordered, "
            f"{len(result.kept_installed)} kept installed, {len(result.blocked)} blocked, {result.rounds} rounds, "
            f"{result.attempts} attempt(s)"
        )
    print(f"   worst median: {worst * 1000:.1f} ms ({worst / 1.0:.2f} of the 1 s budget)")


if __name__ == "__main__":
    main()
