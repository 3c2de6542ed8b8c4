"""Attune pack installer: the shared runtime package every Lambda function imports.

Dependencies point one way: ``functions/`` -> :mod:`.services` -> :mod:`.data` / :mod:`.adapters`,
with :mod:`.domain` and :mod:`.sources` below the services and the neutral modules beside them.

========================= ==========================================================================
:mod:`.domain`            pure: the pack format (``manifest``, ``components``), versions (``semver``),
                          dependency resolution (``resolver``; ``install_order`` alone for who needs
                          only the order), archives (``archive``: readers, checks, canonical writer),
                          safe YAML, runtimes and environment hashes, the registry index format.
                          Imports nothing from services, data, adapters or AWS.
:mod:`.sources`           pack sources on the network, not AWS: HTTPS (``http``: SSRF-checked, bounded)
                          and Git over HTTPS (``git``).
:mod:`.services.stages`   the four stages in pipeline order: ``download``, ``dependencies``,
                          ``build_envs``, ``register``.
:mod:`.services`          everything else a function or the API does: the catalog (read side), pack
                          lifecycle (remove, rollback), tokens, registry indices, installations,
                          stage reports, build reports, uploads, the authorizer.
:mod:`.data`              the single table's key schema, one module per aggregate (``packs``,
                          ``installations``, ``tokens``, ``indices``); the only place keys are built.
:mod:`.adapters`          boto3, and nothing else: S3, DynamoDB, Step Functions, CodeBuild, logs.
:mod:`.api`               the HTTP API's routes (powertools resolver).
:mod:`.buildspec`         the CodeBuild buildspec and the build tools it carries.
``models``, ``errors``    the contracts (pydantic models, one module per stage, loaded by name on first
                          use) and the one error hierarchy.
``settings``, ``wiring``  per-function settings checked at cold start; lazily built adapters.
``edge``, ``observability`` parsing events at the handler's edge; Logger, Tracer, Metrics.
``s3_uri``                ``s3://bucket/key`` vocabulary shared by services and adapters.
========================= ==========================================================================

Cold start: a handler imports what its path needs and no more (``benchmarks/cold_start.py``
measures it, with the floor the stack itself costs); every model defers building its validator to
its first use; the layer ships compiled (``layers/shared/Makefile``).
"""

__version__ = "0.1.0"
