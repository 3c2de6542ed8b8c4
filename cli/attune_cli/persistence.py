"""The local stack's state on disk: object bodies by digest, a journal of changes, a snapshot.

* ``blobs/<aa>/<sha256>``: each S3 object body, written once (temporary file, fsync, rename);
  an unchanged body is never written again, whatever its size.
* ``journal.jsonl``: one line per API call that changed something (a DynamoDB write, an S3 put or
  delete), appended while the stack runs. A line holds the new state of every item or object the
  call touched (the item itself or ``null``; the object's digest and metadata or ``null``), so
  replaying is idempotent and a transaction is one line: all of it or none of it.
* ``snapshot.json``: every item and the object index (digests, not bodies), written at start
  (after replaying) and on a clean stop (temporary file, fsync, rename); the journal is emptied
  after it, so it only ever holds one run's changes.

A ``kill -9`` at any moment leaves at most a torn last journal line, which the next start drops;
everything before it is replayed. The state dir of the previous format (``s3/index.json`` and
``dynamodb.json``) is read once when no snapshot exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"
SNAPSHOT = "snapshot.json"


@dataclass
class StoredState:
    """Items by (table, key) and objects by (bucket, key), as the stack last had them."""

    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> None:
        if record["t"] == "ddb":
            where = (record["table"], _key_text(record["key"]))
            if record["item"] is None:
                self.items.pop(where, None)
            else:
                self.items[where] = record["item"]
        elif record["t"] == "s3":
            place = (record["bucket"], record["key"])
            if record["digest"] is None:
                self.objects.pop(place, None)
            else:
                self.objects[place] = {"digest": record["digest"], "metadata": record.get("metadata") or {}}


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def item_record(table: str, key: dict[str, Any], item: dict[str, Any] | None) -> dict[str, Any]:
    return {"t": "ddb", "table": table, "key": key, "item": item}


def object_record(bucket: str, key: str, digest: str | None, metadata: dict[str, str] | None) -> dict[str, Any]:
    return {"t": "s3", "bucket": bucket, "key": key, "digest": digest, "metadata": metadata}


class StateStore:
    """Appends changes as they happen; reads back the last consistent state."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.blobs = state_dir / "blobs"
        self.journal_path = state_dir / JOURNAL
        self.snapshot_path = state_dir / SNAPSHOT
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.records_written = 0
        self.bytes_written = 0

    # -- writing ---------------------------------------------------------------------------------
    def open(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def put_blob(self, body: bytes) -> str:
        """Stores the body under its digest (once) and returns the digest."""
        digest = hashlib.sha256(body).hexdigest()
        path = self.blobs / digest[:2] / digest
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{digest}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        self.bytes_written += len(body)
        return digest

    def blob(self, digest: str) -> bytes:
        return (self.blobs / digest[:2] / digest).read_bytes()

    def append(self, records: list[dict[str, Any]]) -> None:
        """One journal line for one call's changes: a single write(2), so a crash keeps all or none."""
        if not records:
            return
        line = (json.dumps(records, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                return
            os.write(self._fd, line)
            self.records_written += len(records)
            self.bytes_written += len(line)

    # -- reading ---------------------------------------------------------------------------------
    def load(self) -> StoredState:
        state = StoredState()
        if self.snapshot_path.exists():
            snapshot = json.loads(self.snapshot_path.read_text())
            for record in snapshot["records"]:
                state.apply(record)
        else:
            self._load_previous_format(state)
        for records in self._journal_lines():
            for record in records:
                state.apply(record)
        return state

    def _journal_lines(self) -> Iterable[list[dict[str, Any]]]:
        if not self.journal_path.exists():
            return
        good = 0
        with self.journal_path.open("rb") as handle:
            for raw in handle:
                try:
                    records = json.loads(raw)
                except ValueError:
                    break  # a line torn by a crash: it and anything after it never completed
                if not raw.endswith(b"\n"):
                    break
                good += len(raw)
                yield records
        if good != self.journal_path.stat().st_size:
            os.truncate(self.journal_path, good)

    def _load_previous_format(self, state: StoredState) -> None:
        from attune_packs.data.operations import key_attributes  # only for a one-off migration

        index_path = self.state_dir / "s3" / "index.json"
        if index_path.exists():
            self.blobs.mkdir(parents=True, exist_ok=True)
            for key, entry in json.loads(index_path.read_text()).items():
                digest = self.put_blob((self.state_dir / "s3" / entry["file"]).read_bytes())
                metadata = dict(entry.get("metadata") or {})
                metadata["Content-Type"] = entry.get("content_type", "binary/octet-stream")
                state.apply(object_record(entry.get("bucket", ""), key, digest, metadata))
        items_path = self.state_dir / "dynamodb.json"
        if items_path.exists():
            for item in json.loads(items_path.read_text()):
                state.apply(item_record("", key_attributes(item), item))

    # -- compaction ------------------------------------------------------------------------------
    def snapshot(self, state: StoredState) -> None:
        """Writes the whole index (items and digests, never bodies), then empties the journal and
        drops bodies nothing names any more."""
        records = [item_record(table, json.loads(key), item) for (table, key), item in sorted(state.items.items())] + [
            object_record(bucket, key, entry["digest"], entry["metadata"])
            for (bucket, key), entry in sorted(state.objects.items())
        ]
        tmp = self.snapshot_path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            json.dump({"format": 1, "records": records}, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.snapshot_path)
        with self._lock:
            if self.journal_path.exists():
                os.truncate(self.journal_path, 0)
        for old in ("s3", "s3.new"):
            _remove_tree(self.state_dir / old)
        (self.state_dir / "dynamodb.json").unlink(missing_ok=True)
        named = {entry["digest"] for entry in state.objects.values()}
        for path in self.blobs.glob("*/*"):
            if path.name not in named:
                path.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
