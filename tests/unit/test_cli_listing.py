"""``attune-packs list`` over the API: pages after a cursor (each reads only its packs), or numbered
pages from a stack whose API has no cursors yet; the same packs either way."""

from __future__ import annotations

from typing import Any

import pytest

from attune_cli.api_client import ApiBackend

PACKS = [{"ref": f"p{i:04}", "version": "1.0.0"} for i in range(2345)]


class FakeApi(ApiBackend):
    """What ``GET /packs`` answers with ``packs`` installed; ``cursors=False``: an API from before
    cursors (it ignores ``limit`` and ``cursor``)."""

    def __init__(self, *, cursors: bool, packs: list[dict[str, Any]] = PACKS) -> None:
        super().__init__("http://127.0.0.1:1", "token")
        self.cursors = cursors
        self.packs = packs
        self.requests: list[dict[str, Any]] = []

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, **_: Any) -> Any:
        assert (method, path) == ("GET", "/packs")
        params = dict(params or {})
        self.requests.append(params)
        if self.cursors and ("limit" in params or "cursor" in params):
            after = params.get("cursor")
            rest = [p for p in self.packs if after is None or p["ref"] > after][: int(params.get("limit", 100))]
            cursor = rest[-1]["ref"] if rest and rest[-1] is not self.packs[-1] else None
            return {"data": rest, "pagination": {"limit": params.get("limit"), "next_cursor": cursor}}
        page, size = int(params.get("page", 1)), int(params.get("page_size", 20))
        pages = max(1, -(-len(self.packs) // size))
        return {
            "data": self.packs[(page - 1) * size : page * size],
            "pagination": {"page": page, "page_size": size, "total": len(self.packs), "pages": pages},
        }


def test_packs_are_listed_a_thousand_at_a_time_after_a_cursor() -> None:
    api = FakeApi(cursors=True)
    assert api.list_packs() == PACKS
    assert api.requests == [
        {"limit": 1000},
        {"limit": 1000, "cursor": "p0999"},
        {"limit": 1000, "cursor": "p1999"},
    ]


def test_an_api_without_cursors_is_read_page_by_page() -> None:
    api = FakeApi(cursors=False)
    assert api.list_packs() == PACKS
    assert api.requests[0] == {"limit": 1000} and api.requests[1:] == [
        {"page": n, "page_size": 100} for n in range(1, 25)
    ]


@pytest.mark.parametrize("count", [0, 3])
def test_a_short_list_from_an_api_without_cursors_takes_one_request(count: int) -> None:
    api = FakeApi(cursors=False, packs=PACKS[:count])
    assert api.list_packs() == PACKS[:count]
    assert api.requests == [{"limit": 1000}]
