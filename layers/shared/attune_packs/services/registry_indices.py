"""Loading the ordered registry indices a request or the deployment names (``s3://``, ``https://``,
or a local file on the local stack)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.domain.registry_index import MAX_INDEX_BYTES, RegistryIndex, parse_index
from attune_packs.errors import AttuneError, SourceError
from attune_packs.services.locations import DEFAULT_TIMEOUT_SECONDS, open_location
from attune_packs.settings import Settings
from attune_packs.sources.http import Deadline, HttpClient

StoredIndices = Callable[[], Iterable[str]]


def no_stored_indices() -> Iterable[str]:
    return ()


def index_urls(registry_url: str | None, settings: Settings, stored: StoredIndices = no_stored_indices) -> list[str]:
    """The request's ``registry_url`` overrides everything; otherwise the deployment's
    REGISTRY_INDEX_URLS come first, then the indices managed through ``/pack-indices`` (in their
    ``position`` order; ``stored`` is only called when needed)."""
    if registry_url:
        return [registry_url]
    return list(dict.fromkeys([*settings.registry_index_urls, *stored()]))


def load_indices(
    urls: list[str],
    store: ObjectStore,
    settings: Settings,
    *,
    http: HttpClient | None = None,
    deadline: Deadline | None = None,
    failures: list[IndexFailure] | None = None,
) -> list[tuple[str, RegistryIndex]]:
    """Every index, in order; an index over the size limit is ``INDEX_INVALID`` whatever serves it.

    With ``failures``, an index that cannot be read is recorded there (with its rank) and the others
    are still loaded; without it, the first failure is raised."""
    deadline = deadline or Deadline(DEFAULT_TIMEOUT_SECONDS)
    loaded = []
    for rank, url in enumerate(urls):
        try:
            loaded.append((url, _load_index(url, store, settings, http, deadline)))
        except AttuneError as exc:
            if failures is None:
                raise
            failures.append(IndexFailure(rank, url, exc))
    return loaded


@dataclass(frozen=True)
class IndexFailure:
    rank: int  # position in the ordered list of indices (0 ranks first)
    url: str
    error: AttuneError


def _load_index(
    url: str, store: ObjectStore, settings: Settings, http: HttpClient | None, deadline: Deadline
) -> RegistryIndex:
    try:
        with open_location(url, store, settings, http=http, deadline=deadline, max_bytes=MAX_INDEX_BYTES) as stream:
            content = stream.read(MAX_INDEX_BYTES + 1)
    except SourceError as exc:
        if exc.error_code == "DOWNLOAD_TOO_LARGE":
            raise SourceError(
                f"registry index {url} is larger than {MAX_INDEX_BYTES // 2**20} MiB", error_code="INDEX_INVALID"
            ) from exc
        raise
    return parse_index(content, source=url)
