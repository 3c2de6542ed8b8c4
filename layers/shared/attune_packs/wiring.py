"""Lazily built, process-wide adapters for the Lambda handlers (nothing is built at import).

On Lambda, settings come from the function's environment variables. The local stack hosts every
function in one process, so it scopes each invocation's settings with
:func:`function_environment` instead of mutating ``os.environ``; adapters are cached per setting
value, so functions with different settings never share a wrongly configured adapter.

:func:`configured` validates a function's own settings model once per cold start: on Lambda
(``AWS_LAMBDA_RUNTIME_API`` is set) when the handler module is imported, so the init phase fails
with the missing variable's name; elsewhere (tests, the local stack, which import handlers
before they have an environment) before the first invocation touches its event.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, TypeVar

from attune_packs.adapters.clients import client
from attune_packs.adapters.codebuild import CodeBuildStarter
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.adapters.lambda_invoke import LambdaAsyncInvoker
from attune_packs.adapters.s3 import S3ObjectStore
from attune_packs.adapters.stepfunctions import StepFunctionsExecutions, StepFunctionsTokens
from attune_packs.errors import ConfigurationError
from attune_packs.settings import Settings, load_settings, settings_from, validate_settings

_scoped: ContextVar[Settings | None] = ContextVar("attune_settings", default=None)
_scoped_environ: ContextVar[Mapping[str, str] | None] = ContextVar("attune_environ", default=None)

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def settings() -> Settings:
    return _scoped.get() or load_settings()


@contextmanager
def function_environment(environ: Mapping[str, str]) -> Iterator[Settings]:
    token = _scoped.set(settings_from(environ))
    environ_token = _scoped_environ.set(dict(environ))
    try:
        yield settings()
    finally:
        _scoped_environ.reset(environ_token)
        _scoped.reset(token)


def configured(model: type[Settings]) -> Callable[[HandlerT], HandlerT]:
    """Validate ``model`` (the function's settings) at cold start; see the module docstring."""
    if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
        validate_settings(model, os.environ)  # on Lambda: fails the init phase, naming the variable

    def decorate(handler: HandlerT) -> HandlerT:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            _validated(model, _environment_key(model))
            return handler(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def _environment_key(model: type[Settings]) -> tuple[tuple[str, str], ...]:
    """The variables ``model`` reads, as the current invocation sees them."""
    environ = _scoped_environ.get()
    environ = os.environ if environ is None else environ
    names = {field.alias or name for name, field in model.model_fields.items()}
    return tuple(sorted((name, environ[name]) for name in names if name in environ))


@lru_cache(maxsize=32)
def _validated(model: type[Settings], environ: tuple[tuple[str, str], ...]) -> Settings:
    """Validated once per environment (per cold start on Lambda)."""
    return validate_settings(model, dict(environ))


def object_store() -> S3ObjectStore:
    return _object_store(settings().bucket_name)


@lru_cache(maxsize=8)
def _object_store(bucket: str) -> S3ObjectStore:
    return S3ObjectStore(client("s3"), bucket)


def pack_table() -> DynamoPackTable:
    name = settings().table_name
    if not name:
        raise ConfigurationError("TABLE_NAME is not set for this function")
    return _pack_table(name)


@lru_cache(maxsize=8)
def _pack_table(name: str) -> DynamoPackTable:
    return DynamoPackTable(client("dynamodb"), name)


def stored_indices() -> Callable[[], list[str]]:
    """The registry indices managed through ``/pack-indices``, read from the table when called."""

    def read() -> list[str]:
        from attune_packs.services.managed_indices import enabled_index_urls

        return enabled_index_urls(pack_table())

    return read


def build_starter() -> CodeBuildStarter:
    project = settings().codebuild_project
    if not project:
        raise ConfigurationError("CODEBUILD_PROJECT is not set for this function")
    return _build_starter(project)


@lru_cache(maxsize=8)
def _build_starter(project: str) -> CodeBuildStarter:
    return CodeBuildStarter(client("codebuild"), project)


@lru_cache(maxsize=1)
def task_tokens() -> StepFunctionsTokens:
    return StepFunctionsTokens(client("stepfunctions"))


def executions() -> StepFunctionsExecutions:
    arn = settings().state_machine_arn
    if not arn:
        raise ConfigurationError("STATE_MACHINE_ARN is not set for this function")
    return _executions(arn)


@lru_cache(maxsize=4)
def _executions(arn: str) -> StepFunctionsExecutions:
    return StepFunctionsExecutions(client("stepfunctions"), arn)


def async_invoker() -> LambdaAsyncInvoker:
    function = settings().build_envs_function
    if not function:
        raise ConfigurationError("BUILD_ENVS_FUNCTION is not set for this function")
    return _async_invoker(function)


@lru_cache(maxsize=4)
def _async_invoker(function: str) -> LambdaAsyncInvoker:
    return LambdaAsyncInvoker(client("lambda"), function)


def reset() -> None:
    """Forget every cached adapter and setting (the local stack and tests call this)."""
    from attune_packs.adapters.clients import reset_clients

    load_settings.cache_clear()
    for factory in (_object_store, _pack_table, _build_starter, task_tokens, _executions, _async_invoker, _validated):
        factory.cache_clear()
    reset_clients()
