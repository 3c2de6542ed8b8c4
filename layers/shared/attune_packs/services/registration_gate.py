"""What an API caller may hand to registration: archives the pipeline stored, packs whose
requirement files the dependencies rules accept, and build results only by reference.

The state machine registers what its own stages produced. A caller of ``POST /packs/register``
or ``/packs/register-batch`` could otherwise register a pack that never went through the
dependencies stage (a ``requirements.txt`` with ``--index-url``) or claim environments and test
results it made up; both are refused here.
"""

from __future__ import annotations

from attune_packs.adapters.s3 import ObjectStore, parse_s3_uri
from attune_packs.data.operations import PackTable
from attune_packs.domain.runtime import runtime_requirements
from attune_packs.errors import AttuneError, InvalidRequestError, TransientError
from attune_packs.models import BuildReference, PackFailure
from attune_packs.services.stored_packs import load_pack, stored_file_reader

# Where the build stage stores its results (BuildTask.report_key under reports/installs/).
BUILD_REPORT_PREFIX = "reports/installs/"


def refused_by_dependency_rules(
    pack_paths: list[str], store: ObjectStore, table: PackTable, *, strict: bool
) -> list[PackFailure]:
    """One failure per pack that the dependencies stage would refuse (unreadable archive, invalid
    manifest, forbidden requirement lines, invalid npm files)."""
    refused = []
    for path in dict.fromkeys(pack_paths):
        try:
            stored = load_pack(path, store, table, strict=strict)
            runtime_requirements(stored.contents, stored_file_reader(stored, store))
        except TransientError:
            raise
        except AttuneError as exc:
            refused.append(
                PackFailure(
                    source=path, error=exc.message, error_code=exc.error_code, retriable=False, details=exc.details
                )
            )
    return refused


def check_build_references(references: list[BuildReference], store: ObjectStore) -> None:
    """A reference must name a build report this deployment's build stage stored; the register
    stage then reads it back and checks its sha256 (``reports.read_verified``)."""
    for index, reference in enumerate(references):
        try:
            location = parse_s3_uri(reference.report)
        except (AttuneError, ValueError) as exc:
            raise _bad_reference(index, f"not an s3:// location: {exc}") from exc
        if location.bucket != store.bucket or not location.key.startswith(BUILD_REPORT_PREFIX):
            raise _bad_reference(index, f"only build reports under s3://{store.bucket}/{BUILD_REPORT_PREFIX}")


def _bad_reference(index: int, problem: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"build_results.{index}: {problem}",
        error_code="BUILD_RESULT_UNTRUSTED",
        details=[{"field": f"build_results.{index}.report", "problem": problem}],
    )
