"""Download stage: fetch pack sources, verify them, store them content-addressed in S3."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import stage_handler
from attune_packs.models import DownloadRequest
from attune_packs.observability import count, count_pack_failures, observed
from attune_packs.services.reports import answer
from attune_packs.services.stages.download import download_packs
from attune_packs.settings import DownloadPacksSettings


@observed
@wiring.configured(DownloadPacksSettings)
@stage_handler(DownloadRequest)
def lambda_handler(request: DownloadRequest, context: Any) -> dict[str, Any]:
    store = wiring.object_store()
    response = download_packs(request, store, wiring.settings(), stored_indices=wiring.stored_indices())
    count("PacksDownloaded", response.success_count)
    count_pack_failures("download", response.failed_packs)
    return answer(response, request, store)
