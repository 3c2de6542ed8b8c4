"""Download stage: fetch pack sources, verify them, store them content-addressed in S3."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import DownloadRequest, DownloadResponse
from attune_packs.services.download import download_packs


@stage_handler(DownloadRequest)
def lambda_handler(request: DownloadRequest, context: Any) -> DownloadResponse:
    return download_packs(
        request, wiring.object_store(), wiring.settings(), stored_indices=wiring.stored_indices()
    )
