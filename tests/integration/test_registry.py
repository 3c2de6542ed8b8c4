"""The registry on moto: the table built from template.yaml, real boto3 calls, real conditional
transactions. Races, crashes, a 1,000-action pack, upgrade / remove / rollback round trips,
malformed components, large schemas, throttling."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from attune_cli.template import StackResources
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.adapters.s3 import S3ObjectStore
from attune_packs.data.operations import Condition, Put, TransactionConditionFailed
from attune_packs.data.packs import component_fields
from attune_packs.errors import DependencyError, NotFoundError, ThrottledError
from attune_packs.models import RegisterRequest, RegisterResponse
from attune_packs.services import catalog, lifecycle
from attune_packs.services.stages.register import RegistryPolicy, register_packs
from testkit.pack_archives import tar_gz

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "attune-packs"
TABLE = "attune-registry"


@pytest.fixture(autouse=True)
def _serialised_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each request atomically; moto's in-process backend does not guard itself
    against threads, so requests are serialised here as the service would."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(DynamoHandler, "call_action", call_action)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        _, table_args = StackResources.load(ROOT).table_definition()
        boto3.client("dynamodb", region_name="us-east-1").create_table(TableName=TABLE, **table_args)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield


def new_table(**kwargs: Any) -> DynamoPackTable:
    return DynamoPackTable(boto3.client("dynamodb", region_name="us-east-1"), TABLE, backoff_base=0.001, **kwargs)


@pytest.fixture
def table(aws: None) -> DynamoPackTable:
    return new_table()


@pytest.fixture
def store(aws: None) -> S3ObjectStore:
    return S3ObjectStore(boto3.client("s3", region_name="us-east-1"), BUCKET)


def archive(ref: str, version: str, *, actions: int = 1, deps: str = "", extra: dict[str, str] | None = None) -> bytes:
    files = {"pack.yaml": f'ref: {ref}\nversion: "{version}"\ndescription: registry test pack\n{deps}'}
    for i in range(actions):
        files[f"actions/a{i:04}.yaml"] = f"name: a{i:04}\nrunner_type: python-script\nentry_point: run.py\n"
    files["actions/run.py"] = "def run(): return 1\n"
    files.update(extra or {})
    return tar_gz(files, root=f"{ref}/")


def upload(store: S3ObjectStore, body: bytes) -> str:
    """Store an archive as the download stage does: content-addressed."""
    key = f"archives/sha256/{hashlib.sha256(body).hexdigest()}.tar.gz"
    store.put_bytes(key, body)
    return f"s3://{store.bucket}/{key}"


def register(store: S3ObjectStore, table: DynamoPackTable, *paths: str, **options: Any) -> RegisterResponse:
    policy, clock = options.pop("policy", None), options.pop("clock", None)
    return register_packs(
        RegisterRequest(pack_paths=list(paths), **options),
        store=store,
        table=table,
        policy=policy,
        **({"clock": clock} if clock else {}),
    )


def component_items(table: DynamoPackTable, ref: str) -> list[dict[str, Any]]:
    """The pack's component items, unpacked (not the listings of them)."""
    items = table.query_prefix(f"PACK#{ref}", "COMPONENT#")
    return [component_fields(i) for i in items if i["entity"] == "component"]


def names(pack: dict[str, Any], kind: str = "actions") -> set[str]:
    return {c["name"] for c in pack["components"][kind]}


# --- races and crashes (SECURITY.md 21, 22) ----------------------------------------------------------


class FlipTogether(DynamoPackTable):
    """Every registration reaches its flip before any flips: the worst case for a race."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__(boto3.client("dynamodb", region_name="us-east-1"), TABLE, backoff_base=0.001)
        self.barrier = barrier
        self.waited = False

    def transact(self, operations: Any) -> None:
        if not self.waited:
            self.waited = True
            self.barrier.wait(timeout=60)
        super().transact(operations)


@pytest.mark.parametrize("same_content", [False, True], ids=["different-versions", "same-archive"])
@pytest.mark.parametrize(
    "policy", [None, RegistryPolicy(inline_registration_bytes=0)], ids=["items-in-the-flip", "items-staged-first"]
)
def test_concurrent_registrations_of_one_pack_have_exactly_one_winner_and_no_mixture(
    table: DynamoPackTable, store: S3ObjectStore, same_content: bool, policy: RegistryPolicy | None
) -> None:
    # Given version 1.0.0 installed, and six registrations of the pack prepared in parallel
    register(store, table, upload(store, archive("race", "1.0.0", actions=3)))
    contenders = 6
    paths = [
        upload(
            store, archive("race", "2.0.0" if same_content else f"2.{n}.0", actions=2 + n if not same_content else 4)
        )
        for n in range(contenders)
    ]
    expected = {f"a{i:04}" for i in range(3)}
    allowed = [expected] + [{f"a{i:04}" for i in range(2 + n if not same_content else 4)} for n in range(contenders)]
    barrier = threading.Barrier(contenders)
    tables = [FlipTogether(barrier) for _ in range(contenders)]
    results: list[RegisterResponse | BaseException] = [RuntimeError("did not run")] * contenders
    stop = threading.Event()
    seen: list[set[str]] = []

    def contend(n: int) -> None:
        try:
            results[n] = register(store, tables[n], paths[n], installation_id=f"contender-{n}", policy=policy)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[n] = exc

    def read() -> None:
        reader = new_table()
        while not stop.is_set():
            seen.append(names(catalog.show_pack(reader, "race")))

    # When they all flip at once while a reader keeps reading
    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    reader.join(timeout=30)

    # Then exactly one registered and every other one got a clear CONFLICT
    responses = [r for r in results if isinstance(r, RegisterResponse)]
    assert len(responses) == contenders, results
    winners = [r for r in responses if r.registered_packs]
    assert len(winners) == 1
    losers = [r.failed_packs[0] for r in responses if not r.registered_packs]
    assert len(losers) == contenders - 1
    assert all(f.error_code == "CONFLICT" and "another registration of race finished first" in f.error for f in losers)
    # And the registry shows the winner whole: pointer, components, index listing; nothing of the losers
    [winner] = winners
    version = winner.registered_packs[0].pack_version
    shown = catalog.show_pack(table, "race")
    assert shown["version"] == version and shown["revision"] == 2
    assert names(shown) == allowed[1 + int(version.split(".")[1]) if not same_content else 1]
    listed = catalog.list_components(table, "actions")["components"]
    assert {(c["name"], c["pack_version"]) for c in listed} == {(n, version) for n in names(shown)}
    assert {i["registration_id"] for i in component_items(table, "race")} <= {
        e["registration_id"] for e in table.get_item("PACK#race", "CURRENT")["retained"]
    }
    assert table.query_prefix("PACK#race", "CURRENT#STAGED#") == []
    # And every read taken during the race saw one registration's components, never a mixture
    assert seen and all(snapshot in allowed for snapshot in seen)


class CrashBeforeFlip(DynamoPackTable):
    crash = True

    def transact(self, operations: Any) -> None:
        if self.crash:
            self.crash = False
            raise RuntimeError("the Lambda was killed between writing the items and flipping the pointer")
        super().transact(operations)


@pytest.mark.parametrize(
    ("policy", "left_by_the_crash"),
    [(RegistryPolicy(inline_registration_bytes=0), 5), (None, 0)],
    ids=["items staged before the flip", "items written by the flip"],
)
def test_a_crash_between_items_and_flip_leaves_the_old_version_whole_and_a_retry_completes(
    aws: None, store: S3ObjectStore, policy: RegistryPolicy | None, left_by_the_crash: int
) -> None:
    table = CrashBeforeFlip(boto3.client("dynamodb", region_name="us-east-1"), TABLE)
    table.crash = False
    old = upload(store, archive("app", "1.0.0", actions=2))
    new = upload(store, archive("app", "1.1.0", actions=5))
    register(store, table, old, policy=policy)
    table.crash = True
    crashed = register(store, table, new, installation_id="crashed", policy=policy)
    # an unexpected exception fails its pack (INTERNAL_ERROR naming its type), not the stage
    assert [(f.error_code, f.details["exception_type"]) for f in crashed.failed_packs] == [
        ("INTERNAL_ERROR", "RuntimeError")
    ]

    # The staged items (if any) are in the table, yet every reader sees 1.0.0 whole
    assert len(component_items(table, "app")) == 2 + left_by_the_crash
    shown = catalog.show_pack(table, "app")
    assert shown["version"] == "1.0.0" and names(shown) == {"a0000", "a0001"}
    assert {c["pack_version"] for c in shown["components"]["actions"]} == {"1.0.0"}
    assert [c["ref"] for c in catalog.list_components(table, "actions")["components"]] == ["app.a0000", "app.a0001"]
    assert catalog.get_component(table, "app.a0001")["pack_version"] == "1.0.0"
    with pytest.raises(NotFoundError):
        catalog.get_component(table, "app.a0004")

    # A retry completes, and the crashed attempt's items are collected once surely dead
    retried = register(store, table, new, installation_id="crashed", policy=policy)
    assert retried.registered_packs[0].status == "registered"
    assert names(catalog.show_pack(table, "app")) == {f"a{i:04}" for i in range(5)}
    later = datetime.now(UTC) + timedelta(hours=2)
    register(store, table, upload(store, archive("app", "1.2.0", actions=1)), clock=lambda: later)
    current = table.get_item("PACK#app", "CURRENT")
    kept = {e["registration_id"] for e in current["retained"]}
    assert {i["registration_id"] for i in component_items(table, "app")} <= kept
    assert table.query_prefix("PACK#app", "CURRENT#STAGED#") == []


# --- the budget -----------------------------------------------------------------------------------


def test_a_pack_with_a_thousand_actions_costs_one_write_per_25_items_plus_a_constant(
    table: DynamoPackTable, store: S3ObjectStore
) -> None:
    path = upload(store, archive("big", "1.0.0", actions=1000))
    table.calls = 0
    response = register(store, table, path, installation_id="bench")
    assert response.registered_packs[0].components_registered["actions"] == 1000
    items = 1000 + 1  # the components and the STAGED marker
    assert table.calls == -(-items // 25) + 3, "read the pointer, flip it, record the installation"
    assert len(catalog.show_pack(table, "big")["components"]["actions"]) == 1000
    page = catalog.list_components(table, "actions", limit=50)
    assert len(page["components"]) == 50 and page["next_cursor"] == page["components"][-1]["ref"]
    rest = catalog.list_components(table, "actions", limit=1000, cursor=page["next_cursor"])
    assert len(rest["components"]) == 950 and rest["next_cursor"] is None


# --- round trips ----------------------------------------------------------------------------------


def test_upgrade_remove_and_rollback_round_trips(table: DynamoPackTable, store: S3ObjectStore) -> None:
    lib1 = upload(store, archive("lib", "1.0.0", actions=2))
    app1 = upload(store, archive("app", "1.0.0", deps="dependencies: ['lib>=1']\n"))
    first = register(store, table, app1, lib1)
    assert [p.pack_ref for p in first.registered_packs] == ["lib", "app"]

    # upgrade: lib 1.1.0 drops an action and adds two
    lib11 = upload(
        store,
        archive(
            "lib",
            "1.1.0",
            actions=0,
            extra={
                "actions/x.yaml": "name: x\nrunner_type: python-script\n",
                "actions/y.yaml": "name: y\nrunner_type: shell\n",
            },
        ),
    )
    upgraded = register(store, table, lib11)
    assert upgraded.registered_packs[0].previous_version == "1.0.0"
    shown = catalog.show_pack(table, "lib")
    assert shown["version"] == "1.1.0" and names(shown) == {"x", "y"} and shown["dependents"] == ["app"]
    assert [(h["version"], h["state"]) for h in shown["history"]] == [("1.0.0", "available"), ("1.1.0", "current")]

    # rollback to the previous version: a pointer flip
    back = lifecycle.rollback_pack(table, store, "lib")
    assert (back.to_version, back.rebuilt_from_archive) == ("1.0.0", False)
    assert names(catalog.show_pack(table, "lib")) == {"a0000", "a0001"}
    assert {c["ref"] for c in catalog.list_components(table, "actions")["components"]} == {
        "app.a0000",
        "lib.a0000",
        "lib.a0001",
    }

    # remove: refused while app depends on lib; app can go, then lib
    with pytest.raises(DependencyError):
        lifecycle.remove_pack(table, "lib")
    assert lifecycle.remove_pack(table, "app").removed_version == "1.0.0"
    removed = lifecycle.remove_pack(table, "lib")
    assert (removed.removed_version, removed.components_removed) == ("1.0.0", 4)
    assert catalog.list_packs(table) == [] and catalog.list_components(table, "actions")["components"] == []
    assert component_items(table, "lib") == [] and component_items(table, "app") == []
    history = catalog.pack_history(table, "lib")
    assert [v["version"] for v in history["versions"]] == ["1.0.0", "1.1.0"] and not history["installed"]

    # and install again after removal
    again = register(store, table, lib11)
    assert again.registered_packs[0].status == "registered"
    assert table.get_item("PACK#lib", "CURRENT")["revision"] == 5, "revisions continue after a removal"


def test_rollback_to_a_version_beyond_retention_registers_it_again_from_its_archive(
    table: DynamoPackTable, store: S3ObjectStore
) -> None:
    policy = RegistryPolicy(keep_versions=2)
    for minor in range(4):
        register(store, table, upload(store, archive("app", f"1.{minor}.0", actions=minor + 1)), policy=policy)
    assert {i["pack_version"] for i in component_items(table, "app")} == {"1.3.0", "1.2.0"}
    result = lifecycle.rollback_pack(table, store, "app", "1.0.0", policy=policy)
    assert result.rebuilt_from_archive and result.components_registered["actions"] == 1
    shown = catalog.show_pack(table, "app")
    assert shown["version"] == "1.0.0" and names(shown) == {"a0000"}
    assert {i["pack_version"] for i in component_items(table, "app")} == {"1.0.0", "1.3.0"}


# --- malformed components and large schemas -----------------------------------------------------------


def test_a_malformed_component_fails_its_pack_naming_file_and_field(
    table: DynamoPackTable, store: S3ObjectStore
) -> None:
    bad = upload(store, archive("app", "1.0.0", extra={"rules/r.yaml": "name: r\ntrigger_ref: app.t\naction_ref: 3\n"}))
    good = upload(store, archive("other", "1.0.0"))
    response = register(store, table, bad, good)
    [failure] = response.failed_packs
    assert failure.pack_ref is None and failure.error_code == "COMPONENT_INVALID"
    assert {"file": "rules/r.yaml", "field": "action_ref"}.items() <= failure.details[0].items()
    assert [p.pack_ref for p in response.registered_packs] == ["other"]
    assert table.query_prefix("PACK#app", "") == []


def test_a_schema_larger_than_an_item_goes_to_s3(table: DynamoPackTable, store: S3ObjectStore) -> None:
    params = "".join(f"  p{i}:\n    type: string\n    description: {'d' * 200}\n" for i in range(2500))
    big = {"actions/big.yaml": f"name: big\nrunner_type: python-script\nentry_point: run.py\nparameters:\n{params}"}
    response = register(store, table, upload(store, archive("app", "1.0.0", extra=big)))
    assert response.registered_packs, response.failed_packs
    item = next(i for i in component_items(table, "app") if i["name"] == "big")
    assert "parameters" not in item and item["schema_bytes"] > 400 * 1024
    body = (
        boto3.client("s3", region_name="us-east-1")
        .get_object(Bucket=BUCKET, Key=f"components/{item['schema_sha256']}.json")["Body"]
        .read()
    )
    assert hashlib.sha256(body).hexdigest() == item["schema_sha256"]
    assert len(catalog.get_component(table, "app.big", store=store)["parameters"]) == 2500


# --- the adapter against throttling and cancelled transactions (SECURITY.md 20) ---------------------------


class Flaky:
    """A DynamoDB client whose chosen operation fails ``times`` times before behaving."""

    def __init__(self, client: Any, operation: str, error: dict[str, Any], times: int) -> None:
        self._client, self._operation, self._error, self.left = client, operation, error, times

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != self._operation:
            return method

        def flaky(**kwargs: Any) -> Any:
            if self.left:
                self.left -= 1
                raise ClientError(self._error, name)
            return method(**kwargs)

        return flaky


THROTTLED = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def throttling_client(operation: str, attempts: int) -> tuple[Any, list[str]]:
    """A DynamoDB client with botocore's standard retries (``attempts``) whose ``operation`` is always
    throttled at the HTTP level; returns it and the list of requests botocore sent."""
    from botocore.awsrequest import AWSResponse
    from botocore.config import Config

    client = boto3.client(
        "dynamodb", region_name="us-east-1", config=Config(retries={"mode": "standard", "max_attempts": attempts})
    )
    sent: list[str] = []

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        name = (target.decode() if isinstance(target, bytes) else str(target)).rpartition(".")[2]
        if name != operation:
            return None
        sent.append(name)
        body = json.dumps({"__type": "ProvisionedThroughputExceededException", "message": "slow down"}).encode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body))

    client.meta.events.register_first("before-send.dynamodb", throttle)
    return client, sent


@pytest.mark.parametrize("operation", ["Query", "GetItem", "BatchWriteItem"])
def test_one_retry_layer_botocore_retries_throttling_and_the_adapter_does_not_retry_again(
    aws: None, operation: str
) -> None:
    client, sent = throttling_client(operation, attempts=3)
    table = DynamoPackTable(client, TABLE, backoff_base=0.001)
    call = {
        "Query": lambda: table.query_prefix("PACK#x", "CURRENT"),
        "GetItem": lambda: table.get_item("PACK#x", "CURRENT"),
        "BatchWriteItem": lambda: table.batch_put([{"PK": "P", "SK": "S"}]),
    }[operation]
    with pytest.raises(ThrottledError) as caught:
        call()
    assert caught.value.retriable and caught.value.error_code == "THROTTLED"
    assert table.calls == 1, "the adapter called once"
    assert len(sent) == 1 + 3, "botocore sent it once and retried it max_attempts (3) times"


def test_work_left_unprocessed_is_resent_for_a_bounded_time_then_reported_retriable(aws: None) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")

    class NeverDone:
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
            return {"UnprocessedItems": RequestItems}

    table = DynamoPackTable(NeverDone(), TABLE, backoff_base=0.01, unprocessed_budget=0.3)
    started = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        table.batch_put({"PK": "P", "SK": f"S{i:02}"} for i in range(3))
    assert caught.value.retriable
    assert time.monotonic() - started < 1.0 and table.calls > 1


def test_unprocessed_batch_items_are_written_on_retry(aws: None) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")

    class HalfDoneOnce:
        """The first BatchWriteItem writes half of its items and reports the rest unprocessed."""

        partial = True

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
            requests = RequestItems[TABLE]
            if not self.partial:
                return client.batch_write_item(RequestItems=RequestItems)
            self.partial = False
            client.batch_write_item(RequestItems={TABLE: requests[: len(requests) // 2]})
            return {"UnprocessedItems": {TABLE: requests[len(requests) // 2 :]}}

    table = DynamoPackTable(HalfDoneOnce(), TABLE, backoff_base=0.001)
    assert table.batch_put({"PK": "P", "SK": f"S{i:02}"} for i in range(30)) == 30
    assert [i["SK"] for i in new_table().query_prefix("P", "S")] == [f"S{i:02}" for i in range(30)]
    assert table.calls == 3, "25 items (half unprocessed, retried), then 5"


def test_transactions_cancelled_by_a_conflict_are_retriable_and_failed_conditions_are_named(aws: None) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    cancelled = {
        "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
        "CancellationReasons": [{"Code": "TransactionConflict"}],
    }
    table = DynamoPackTable(Flaky(client, "transact_write_items", cancelled, 1), TABLE, backoff_base=0.001)
    with pytest.raises(ThrottledError) as conflict:
        table.transact([Put({"PK": "P", "SK": "CURRENT", "revision": 1}, Condition(exists=False))])
    assert conflict.value.retriable and new_table().get_item("P", "CURRENT") is None
    table.transact([Put({"PK": "P", "SK": "CURRENT", "revision": 1}, Condition(exists=False))])
    assert new_table().get_item("P", "CURRENT") == {"PK": "P", "SK": "CURRENT", "revision": 1}
    with pytest.raises(TransactionConditionFailed) as caught:
        new_table().transact(
            [
                Put({"PK": "Q", "SK": "CURRENT", "revision": 1}),
                Put({"PK": "P", "SK": "CURRENT", "revision": 2}, Condition(exists=True, equals={"revision": 5})),
            ]
        )
    assert caught.value.failed == [1] and caught.value.error_code == "CONFLICT"
    assert new_table().get_item("Q", "CURRENT") is None, "all or nothing"


def test_items_round_trip_with_numbers_nested_maps_and_empty_values(table: DynamoPackTable) -> None:
    item = {
        "PK": "P",
        "SK": "S",
        "rate": 0.75,
        "count": 3,
        "nested": {"list": [1, 2.5, "x"], "empty": {}},
        "none": None,
    }
    table.batch_put([item])
    assert table.get_item("P", "S") == {k: v for k, v in item.items() if v is not None}
    assert json.dumps(table.batch_get([("P", "S"), ("P", "missing")])[("P", "S")]["nested"]) == json.dumps(
        item["nested"]
    )


# --- scale: a 3,581-action pack, calls counted at the client (botocore event hooks) ----------------------


def test_a_3581_action_pack_costs_at_most_150_calls_and_2_unchanged_counted_at_the_client(
    table: DynamoPackTable, store: S3ObjectStore
) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    sent: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: sent.append(model.name))
    counted = DynamoPackTable(client, TABLE)
    path = upload(store, archive("aws", "1.0.0", actions=3580))  # + run.py's sibling: 3,580 action files
    response = register(store, counted, path, installation_id="big")
    assert response.registered_packs[0].components_registered["actions"] == 3580
    assert len(sent) <= 150 and sent.count("TransactWriteItems") == 1, sorted(set(sent))
    # the items (components, the STAGED marker, a few listing parts) 25 per call, and the installation record
    assert sent.count("Query") == 1 and sent.count("BatchWriteItem") <= math.ceil((3580 + 1 + 8) / 25) + 1

    sent.clear()
    assert register(store, counted, path).registered_packs[0].status == "unchanged"
    assert sent == ["Query", "BatchWriteItem"], "read the pointer, record the installation"

    sent.clear()
    shown = catalog.show_pack(counted, "aws")
    assert len(shown["components"]["actions"]) == 3580 and len(sent) <= 4
    sent.clear()
    page = catalog.list_components(counted, "actions", limit=50)
    assert len(page["components"]) == 50 and page["next_cursor"] == "aws.a0049" and len(sent) <= 5
