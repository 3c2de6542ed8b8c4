"""Benchmarks: `make bench` runs every `benchmarks/bench_*.py` module's `main()` and prints figures.

Figures are medians and ratios (the machines are shared and noisy) and, where possible, counts of
deterministic things: AWS API calls, bytes, builds.
"""
