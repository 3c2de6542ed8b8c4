"""The local stack's state on disk: a journal of changes, bodies by digest, a snapshot on stop."""

from __future__ import annotations

from pathlib import Path

from attune_cli.persistence import StateStore, item_record, object_record

KEY_A = {"PK": {"S": "PACK#a"}, "SK": {"S": "CURRENT"}}
KEY_B = {"PK": {"S": "PACK#b"}, "SK": {"S": "CURRENT"}}


def item(key: dict[str, dict[str, str]], version: str) -> dict[str, dict[str, str]]:
    return {**key, "version": {"S": version}}


def opened(path: Path) -> StateStore:
    store = StateStore(path)
    store.open()
    return store


def test_changes_are_read_back_in_order_the_last_state_of_each_item_wins(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.append([item_record("t", KEY_A, item(KEY_A, "1.0.0"))])
    store.append([item_record("t", KEY_A, item(KEY_A, "2.0.0")), item_record("t", KEY_B, item(KEY_B, "1.0.0"))])
    store.append([item_record("t", KEY_B, None)])
    store.close()

    state = StateStore(tmp_path).load()
    assert list(state.items.values()) == [item(KEY_A, "2.0.0")]


def test_a_line_torn_by_a_crash_is_dropped_whole_and_earlier_lines_stay(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.append([item_record("t", KEY_A, item(KEY_A, "1.0.0"))])
    store.close()
    complete = (tmp_path / "journal.jsonl").stat().st_size
    with (tmp_path / "journal.jsonl").open("ab") as journal:  # a transaction of two items, cut short
        journal.write(b'[{"t":"ddb","table":"t","key":{"PK":{"S":"PACK#b"}')

    state = StateStore(tmp_path).load()
    assert list(state.items.values()) == [item(KEY_A, "1.0.0")]
    assert (tmp_path / "journal.jsonl").stat().st_size == complete  # the torn tail is cut off

    store = opened(tmp_path)  # and what follows is readable again
    store.append([item_record("t", KEY_B, item(KEY_B, "1.0.0"))])
    store.close()
    assert len(StateStore(tmp_path).load().items) == 2


def test_an_unchanged_body_is_stored_once_and_a_snapshot_drops_bodies_nothing_names(tmp_path: Path) -> None:
    store = opened(tmp_path)
    first = store.put_blob(b"archive" * 1000)
    written = store.bytes_written
    assert store.put_blob(b"archive" * 1000) == first and store.bytes_written == written
    old = store.put_blob(b"old environment")
    store.append([object_record("bucket", "archives/a.tgz", first, {"content-type": "application/gzip"})])
    store.append([object_record("bucket", "envs/old.zip", old, {})])
    store.append([object_record("bucket", "envs/old.zip", None, None)])

    store.snapshot(store.load())
    store.close()

    assert (tmp_path / "journal.jsonl").stat().st_size == 0
    state = StateStore(tmp_path).load()
    assert state.objects == {
        ("bucket", "archives/a.tgz"): {"digest": first, "metadata": {"content-type": "application/gzip"}}
    }
    assert [p.name for p in (tmp_path / "blobs").glob("*/*")] == [first]


def test_a_crash_between_snapshot_and_emptying_the_journal_replays_to_the_same_state(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.append([item_record("t", KEY_A, item(KEY_A, "1.0.0"))])
    store.append([item_record("t", KEY_A, None), item_record("t", KEY_B, item(KEY_B, "3.0.0"))])
    journal = (tmp_path / "journal.jsonl").read_bytes()
    store.snapshot(store.load())
    store.close()
    (tmp_path / "journal.jsonl").write_bytes(journal)  # as if the journal had not been emptied

    assert list(StateStore(tmp_path).load().items.values()) == [item(KEY_B, "3.0.0")]
