"""Loading the ordered registry indices a request or the deployment names."""

from __future__ import annotations

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.registry import MAX_INDEX_BYTES, RegistryIndex, parse_index
from attune_packs.services.locations import open_location
from attune_packs.settings import Settings


def index_urls(registry_url: str | None, settings: Settings) -> list[str]:
    """The request's ``registry_url`` overrides the configured ordered list."""
    return [registry_url] if registry_url else list(settings.registry_index_urls)


def load_indices(urls: list[str], store: ObjectStore, settings: Settings) -> list[tuple[str, RegistryIndex]]:
    loaded = []
    for url in urls:
        with open_location(url, store, settings) as stream:
            loaded.append((url, parse_index(stream.read(MAX_INDEX_BYTES + 1), source=url)))
    return loaded
