"""The registry's read routes cost what they show, not what is installed: a page of packs reads its
own packs, a pack with hundreds of components is shown from a few items, a page of components
reads one page of the index (DynamoDB calls counted by the in-memory table)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs import wiring
from attune_packs.models import RegisterRequest
from attune_packs.services import catalog
from attune_packs.services.stages.register import register_packs
from testkit.api import api_event, call
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz


def installed(table: FakePackTable, store: FakeObjectStore, *packs: tuple[str, int]) -> None:
    """Registers each (ref, number of actions) pack at 1.0.0."""
    paths = []
    for ref, actions in packs:
        extra = {f"actions/a{i:04}.yaml": f"name: a{i:04}\nrunner_type: python-script\n" for i in range(actions - 1)}
        body = tar_gz(pack_files(ref, "1.0.0", extra=extra))
        paths.append(store.add(stored_archive_key(body), body))
    register_packs(RegisterRequest(pack_paths=paths), store=store, table=table)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> FakePackTable:
    table, store = FakePackTable(), FakeObjectStore()
    installed(table, store, ("big", 400), *((f"p{i:02}", 1) for i in range(30)))
    monkeypatch.setattr(wiring, "pack_table", lambda: table)
    monkeypatch.setattr(wiring, "object_store", lambda: store)
    table.calls.clear()
    return table


def get(table: FakePackTable, path: str, **query: Any) -> tuple[int, dict[str, Any], Counter[str]]:
    """The route's answer and the DynamoDB calls it made."""
    event = api_event("GET", path)
    if query:
        event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
        event["multiValueQueryStringParameters"] = {k: [str(v)] for k, v in query.items()}
    table.calls.clear()
    status, body = call(event)
    return status, body, Counter(table.calls)


def test_packs_are_listed_after_a_cursor_each_page_reading_only_its_own(table: FakePackTable) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        status, body, calls = get(table, "/api/v1/packs", limit=7, **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        assert calls == Counter(query=1)  # one page of the packs index, nothing per pack
        seen.extend(p["ref"] for p in body["data"])
        pages += 1
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ["big", *(f"p{i:02}" for i in range(30))] and pages == 5
    assert body["pagination"]["limit"] == 7


def test_one_page_of_up_to_a_thousand_packs_is_the_whole_list(table: FakePackTable) -> None:
    status, body, calls = get(table, "/api/v1/packs", limit=1000)
    numbered = [get(table, "/api/v1/packs", page=page, page_size=20)[1]["data"] for page in (1, 2)]
    assert status == 200 and calls == Counter(query=1) and body["pagination"]["next_cursor"] is None
    assert body["data"] == numbered[0] + numbered[1]  # the same records as the numbered pages


def test_numbered_pages_still_count_every_pack(table: FakePackTable) -> None:
    status, body, _calls = get(table, "/api/v1/packs", page=2, page_size=10)
    assert status == 200
    assert [p["ref"] for p in body["data"]] == [f"p{i:02}" for i in range(9, 19)]
    assert body["pagination"] == {"page": 2, "page_size": 10, "total": 31, "pages": 4}


@pytest.mark.parametrize(
    ("query", "code"), [({"cursor": "Not A Ref"}, "PACK_REF_INVALID"), ({"limit": 1001}, "INVALID_REQUEST")]
)
def test_a_bad_cursor_or_limit_is_refused(table: FakePackTable, query: dict[str, Any], code: str) -> None:
    status, body, calls = get(table, "/api/v1/packs", **query)
    assert (status, body["code"]) == (400, code) and not calls


def test_a_pack_is_shown_from_a_few_items_however_many_components_it_has(table: FakePackTable) -> None:
    status, big, big_calls = get(table, "/api/v1/packs/big")
    small_status, _small, small_calls = get(table, "/api/v1/packs/p03")
    assert status == small_status == 200
    assert len(big["data"]["components"]["actions"]) == 400
    assert big_calls == small_calls == Counter(query=3)  # pointer with its companions, listing, versions
    assert "PK" not in big["data"]["components"]["actions"][0]


def test_a_page_of_components_reads_one_page_of_the_index(table: FakePackTable) -> None:
    status, body, calls = get(table, "/api/v1/components/actions", limit=50)
    assert status == 200
    page = body["data"]
    # at most the limit: the big pack (cut by the index page) is read from its listing, and the page
    # ends inside it, at the component the next page resumes after
    assert [c["ref"] for c in page["components"]] == [f"big.a{i:04}" for i in range(50)]
    assert page["next_cursor"] == "big.a0049"
    assert calls == Counter(query=2, batch_get_item=1)
    _status, inside, inside_calls = get(table, "/api/v1/components/actions", limit=400, cursor="big.a0049")
    refs = [c["ref"] for c in inside["data"]["components"]]
    assert refs == [f"big.a{i:04}" for i in range(50, 399)] + ["big.hello"] + [f"p{i:02}.hello" for i in range(30)]
    assert inside["data"]["next_cursor"] is None
    assert inside_calls == Counter(query=2, batch_get_item=2)  # the big pack again, then one index page
    _status, rest, rest_calls = get(table, "/api/v1/components/actions", limit=50, cursor="big")
    assert [c["ref"] for c in rest["data"]["components"]] == [f"p{i:02}.hello" for i in range(30)]
    assert rest_calls == Counter(query=1, batch_get_item=1)
    assert all("PK" not in c and "GSI1SK" not in c for c in page["components"] + rest["data"]["components"])


def test_the_read_routes_answer_the_catalog_records_unchanged(table: FakePackTable) -> None:
    assert get(table, "/api/v1/packs/big")[1] == {"data": catalog.show_pack(table, "big")}
    assert get(table, "/api/v1/components/actions", limit=5, cursor="p10")[1] == {
        "data": catalog.list_components(table, "actions", limit=5, cursor="p10")
    }
    page = catalog.list_packs_page(table, limit=3, cursor="p20")
    assert get(table, "/api/v1/packs", limit=3, cursor="p20")[1] == {
        "data": page["packs"],
        "pagination": {"limit": 3, "next_cursor": page["next_cursor"]},
    }


def test_a_packs_page_shows_its_large_pack_yaml_fields_read_back_from_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a pack whose configuration schema is too large for its record (kept in S3)
    table, store = FakePackTable(), FakeObjectStore()
    properties = "".join(f"    option_{i}: {{type: string, description: {'d' * 200}}}\n" for i in range(400))
    manifest = f"conf_schema:\n  type: object\n  properties:\n{properties}"
    files = pack_files("app")
    files["pack.yaml"] = f"{files['pack.yaml']}{manifest}"
    body = tar_gz(files)
    register_packs(RegisterRequest(pack_paths=[store.add(stored_archive_key(body), body)]), store=store, table=table)
    monkeypatch.setattr(wiring, "pack_table", lambda: table)
    monkeypatch.setattr(wiring, "object_store", lambda: store)
    assert "conf_schema" not in table.items[("PACK#app", "CURRENT")]["manifest"]

    # When its page is asked for, Then the schema is in it, read back in place
    status, shown, _calls = get(table, "/api/v1/packs/app")
    assert status == 200
    assert len(shown["data"]["manifest"]["conf_schema"]["properties"]) == 400
    assert "manifest_document" not in shown["data"]
