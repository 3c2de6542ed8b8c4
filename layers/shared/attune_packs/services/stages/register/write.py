"""Write: a registration's items (its STAGED marker, then one item per component, large schemas
moved to S3). The flip writes them in its own transaction when they fit there; otherwise they are
staged first, in batches of 25, and nothing points at them until the flip."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import packs as stored
from attune_packs.data.operations import Key, PackTable, item_key
from attune_packs.domain.components import Component
from attune_packs.errors import ManifestError
from attune_packs.services.catalog import public_json_size
from attune_packs.services.stages.register.policy import RegistryPolicy

SCHEMA_PREFIX = "components/"
MANIFEST_PREFIX = "manifests/"
_BULK_FIELDS = ("parameters", "output_schema", "attributes")
# pack.yaml fields that can be large: moved to S3 together when they are (the rest stays inline).
BULK_MANIFEST_FIELDS = ("conf_schema", "config_schema", "config")


def _offload(
    component: dict[str, Any], store: ObjectStore, policy: RegistryPolicy, uploaded: set[str]
) -> dict[str, Any]:
    """Move a component's large schemas to S3 (content-addressed) and reference them."""
    bulk = {k: component[k] for k in _BULK_FIELDS if component.get(k)}
    if not bulk:
        return component
    body = json.dumps(bulk, sort_keys=True, separators=(",", ":"), default=str).encode()
    if len(body) <= policy.offload_bytes:
        return component
    digest = hashlib.sha256(body).hexdigest()
    key = f"{SCHEMA_PREFIX}{digest}.json"
    if key not in uploaded:
        store.put_bytes(key, body, "application/json")
        uploaded.add(key)
    slim = {k: v for k, v in component.items() if k not in _BULK_FIELDS}
    return {
        **slim,
        "parameter_names": sorted(component.get("parameters") or {})[:500],
        "schema_ref": f"s3://{store.bucket}/{key}",
        "schema_sha256": digest,
        "schema_bytes": len(body),
    }


def stored_manifest(
    fields: dict[str, Any], store: ObjectStore, policy: RegistryPolicy, uploaded: set[str] | None = None
) -> dict[str, Any]:
    """pack.yaml's kept fields as the version record and pointer hold them (``manifest``): inline,
    except that large configuration schemas and configuration move to S3 (content-addressed, as
    component schemas do), referenced by ``manifest_document`` beside it (read back by
    ``catalog.show_pack``). Returns the record's fields."""
    bulk = {k: fields[k] for k in BULK_MANIFEST_FIELDS if fields.get(k) is not None}
    body = json.dumps(bulk, sort_keys=True, separators=(",", ":"), default=str).encode()
    if not bulk or len(body) <= policy.offload_bytes:
        return {stored.MANIFEST_FIELD: fields}
    digest = hashlib.sha256(body).hexdigest()
    key = f"{MANIFEST_PREFIX}{digest}.json"
    if uploaded is None or key not in uploaded:
        store.put_bytes(key, body, "application/json")
        if uploaded is not None:
            uploaded.add(key)
    document = {"ref": f"s3://{store.bucket}/{key}", "sha256": digest, "bytes": len(body), "fields": sorted(bulk)}
    return {
        stored.MANIFEST_FIELD: {k: v for k, v in fields.items() if k not in bulk},
        stored.MANIFEST_DOCUMENT_FIELD: document,
    }


def _too_large(component: Component, fields: dict[str, Any], size: int) -> ManifestError:
    largest = max(fields, key=lambda k: public_json_size({k: fields[k]}))
    return ManifestError(
        f"{component.source_file}: {largest}: the component's metadata is too large to register "
        f"({size} bytes after moving its schemas to S3)",
        error_code="COMPONENT_TOO_LARGE",
        details=[{"file": component.source_file, "field": largest, "problem": "too large"}],
    )


@dataclass
class Registration:
    """A registration's items before they are written: its ``STAGED`` marker, then one item per
    component and the listing of them all."""

    marker: dict[str, Any]
    items: list[dict[str, Any]]

    def fits(self, operations: int, max_bytes: int) -> bool:
        """Whether its items fit in ``operations`` more operations of a transaction and ``max_bytes``."""
        return len(self.items) <= operations and sum(public_json_size(item) for item in self.items) <= max_bytes

    def stage(self, table: PackTable) -> list[Key]:
        """Write the marker and the items in batches (nothing points at them until the flip); their
        keys, the marker's first."""
        written = [self.marker, *self.items]
        table.batch_put(written)
        return [item_key(item) for item in written]


def registration_items(
    store: ObjectStore,
    ref: str,
    version: str,
    registration_id: str,
    components: list[Component],
    policy: RegistryPolicy,
    now: datetime,
    uploaded: set[str] | None = None,
    installation_id: str | None = None,
) -> Registration:
    """A registration's items, each checked against the item size limit (large schemas moved to S3
    first); nothing is written to the table."""
    uploaded = uploaded if uploaded is not None else set()
    staged: list[dict[str, Any]] = []
    for component in components:
        fields = _offload(component.model_dump(mode="json"), store, policy, uploaded)
        item = stored.component_item(
            ref, version, registration_id, component.type, component.name, component.ref, fields
        )
        size = public_json_size(item)
        if size > policy.max_item_bytes:
            raise _too_large(component, fields, size)
        staged.append(item)
    return Registration(
        marker=stored.staged_marker(ref, version, registration_id, installation_id, now),
        items=[*staged, *stored.listing_items(ref, version, registration_id, staged)],
    )
