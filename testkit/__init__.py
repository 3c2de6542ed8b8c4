"""Helpers shared by the tests and the benchmarks (never imported by production code).

Both import it from the repository root: pytest puts the root on ``sys.path`` (``pythonpath`` in
pyproject's ``[tool.pytest.ini_options]``) and ``python -m benchmarks`` runs from the root.

* ``pack_archives``: pack archives as tar.gz / zip bytes from a mapping of files, hostile members included.
* ``events``: the events handlers receive, read from the JSON files in ``tests/events/``.
"""
