"""Services: what each function does, given its adapters and settings.

:mod:`.stages` holds the four installation stages (download, dependencies, build_envs, register).
Beside them: ``catalog`` (reading the registry), ``lifecycle`` (remove, rollback), ``stored_packs``
(reading canonical archives back, digest-checked), ``registry_indices`` (fetching the ordered
indices) and ``managed_indices`` (the operator's list of them), ``installations`` and ``reports``
(execution status, stage reports), ``build_reports`` (what builds report), ``locations`` (opening
``s3://``/``https://``/local sources), ``uploads`` (the S3 upload trigger), ``tokens`` and
``authorizer`` (API credentials).
"""
