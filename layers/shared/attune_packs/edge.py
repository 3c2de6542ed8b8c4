"""The edge of every stage handler: parse the event into its model, shape the result.

Logging context, tracing and metrics come from ``observability.observed``, which every handler
wears outside this decorator.

Errors are mapped here once: an invalid event becomes ``InvalidRequestError``; every
:class:`AttuneError` propagates with its class name as Lambda's ``errorType`` so the state
machine's Retry/Catch can match it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from attune_packs.errors import InvalidRequestError
from attune_packs.observability import logger

__all__ = ["logger", "parse_request", "stage_handler"]

RequestT = TypeVar("RequestT", bound=BaseModel)


def parse_request(model: type[RequestT], event: Any) -> RequestT:
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]} for err in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidRequestError(f"invalid request: {summary}", details=problems) from exc


def stage_handler(
    model: type[RequestT],
) -> Callable[[Callable[[RequestT, Any], BaseModel | dict[str, Any]]], Callable[[dict[str, Any], Any], dict[str, Any]]]:
    def decorate(
        func: Callable[[RequestT, Any], BaseModel | dict[str, Any]],
    ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        @functools.wraps(func)
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            request = parse_request(model, event)
            result = func(request, context)
            return result.model_dump(mode="json") if isinstance(result, BaseModel) else result

        return handler

    return decorate
