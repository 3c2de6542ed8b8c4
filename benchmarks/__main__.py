"""Run every benchmark module (or those named on the command line: `python -m benchmarks resolver`).

Every benchmark runs even when an earlier one misses a budget; the run ends with the list of those
that did, and fails (exit status 1) when there is one.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or n.removeprefix("bench_") in argv]
    if not wanted:
        print(f"no benchmark matches {argv}; available: {[n.removeprefix('bench_') for n in names]}")
        return 2
    missed: list[str] = []
    for name in wanted:
        short = name.removeprefix("bench_")
        print(f"== {short}", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except SystemExit as stop:
            if stop.code not in (None, 0):
                missed.append(f"{short}: {stop.code}" if isinstance(stop.code, str) else short)
        print(f"   ({time.perf_counter() - started:.1f}s)\n", flush=True)
    if missed:
        print("!!! budgets missed in: " + "; ".join(missed), flush=True)
        return 1
    print("every budget met", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
