"""schemathesis against the local API server, from the API's own OpenAPI document, with a real admin
token: every route of the scope table is called (POST /packs/upload with generated multipart forms),
none answers 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from attune_cli.http_server import LocalApiServer
from attune_cli.local_stack import LocalStack
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.api.scopes import ROUTE_SCOPES
from attune_packs.services.tokens import create_token

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    state = tmp_path_factory.mktemp("fuzz") / "state"
    with LocalStack(state) as stack, LocalApiServer(stack) as api:
        table = DynamoPackTable(stack.client("dynamodb"), stack.table)
        yield api.url, create_token(table, name="fuzz", scopes=["admin"]).token


def test_no_operation_answers_with_a_server_error(server: tuple[str, str]) -> None:
    url, token = server
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    server_errors: list[str] = []
    calls = 0
    called: set[tuple[str, str]] = set()
    statuses: dict[tuple[str, str], set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=url, headers=headers, timeout=60)
            route = (case.method.upper(), case.operation.path.removeprefix("/api/v1"))
            called.add(route)
            statuses.setdefault(route, set()).add(response.status_code)
            assert response.status_code != 401, "the real token was refused"
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.path} {case.path_parameters} {case.query} "
                    f"-> {response.status_code}: {response.text[:200]}"
                )

        call()

    print(f"{calls} calls over {len(operations)} operations; {len(server_errors)} server errors")
    assert len(operations) >= 17 and calls >= len(operations)
    called.add(("GET", "/openapi.json"))  # schemathesis read the document from it, with the token
    assert called == set(ROUTE_SCOPES), f"not called: {sorted(set(ROUTE_SCOPES) - called)}"
    # the multipart route was reached with forms schemathesis built from the document
    assert statuses[("POST", "/packs/upload")] - {413, 415}, statuses[("POST", "/packs/upload")]
    assert server_errors == [], "\n".join(server_errors[:10])
