"""Logs, traces and metrics of every function, set up once here (powertools).

* :data:`logger`: structured JSON logs; :func:`observed` adds the Lambda context and the
  correlation ids of the event (installation id, execution ARN, pack refs) to every line of an
  invocation.
* :func:`tracer`: the X-Ray tracer, created on the first traced invocation and never at import
  (creating it imports the X-Ray SDK, about half a second). Where tracing is off
  (``POWERTOOLS_TRACE_DISABLED``, the local stack, tests) it is not created at all.
* :data:`metrics`: CloudWatch embedded-metric-format metrics in one namespace, flushed at the end
  of each invocation. Handlers count from the result a service returned (failures by
  ``error_code``, cache hits, items written), so services stay free of observability code.

Nothing here imports services or adapters; handlers (and ``edge``) import this module.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "attune-pack-installer"
NAMESPACE = "AttunePackInstaller"
# The installation (execution) ARN is this prefix + ":" + the installation id (the execution name).
EXECUTIONS_ARN_ENV = "INSTALLATION_EXECUTIONS_ARN"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = Callable[[dict[str, Any], Any], Any]
HandlerT = TypeVar("HandlerT", bound=Handler)

_REPORT_KEY = re.compile(r"^reports/installs/(?P<id>[A-Za-z0-9][A-Za-z0-9_.:-]{0,127})/")
_BUILD_REPORT = re.compile(r"/build-(?P<ref>[^/]+)\.json$")
_MAX_PACKS_LOGGED = 10


# --- correlation ids ----------------------------------------------------------------------------


def correlation_ids(event: Any, executions_arn: str = "") -> dict[str, Any]:
    """The installation id, execution ARN and pack refs an event carries, for every log line.

    Stage events name their installation through ``installation_id`` or their ``report_key``
    (``reports/installs/<execution name>/…``); a Map item names one pack (its archive in
    ``pack_path``, its ref in its report key); batch stages name their packs (``packs`` /
    ``pack_paths``).
    """
    if not isinstance(event, Mapping):
        return {}
    ids: dict[str, Any] = {}
    installation = _installation_id(event)
    if installation:
        ids["installation_id"] = installation
        if executions_arn:
            ids["execution_arn"] = f"{executions_arn}:{installation}"
    pack = event.get("pack_ref") or _build_report_pack(event.get("report_key"))
    if isinstance(pack, str) and pack:
        ids["pack_ref"] = _without_credentials(pack)
    archive = event.get("pack_path")
    if isinstance(archive, str) and archive:
        ids["pack_path"] = _without_credentials(archive)
    packs = event.get("packs") or event.get("pack_paths")
    if isinstance(packs, list) and packs:
        ids["pack_refs"] = [_without_credentials(str(p)) for p in packs[:_MAX_PACKS_LOGGED]]
    return ids


def _build_report_pack(report_key: Any) -> str | None:
    """A Map item's pack ref, from its report key (``reports/installs/<id>/build-<ref>.json``)."""
    match = _BUILD_REPORT.search(report_key) if isinstance(report_key, str) else None
    return match.group("ref") if match else None


def _without_credentials(source: str) -> str:
    """A source as it may be logged: ``https://user:token@host/…`` loses its user information."""
    parts = urlsplit(source)
    if "@" not in parts.netloc:
        return source
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _installation_id(event: Mapping[str, Any]) -> str | None:
    explicit = event.get("installation_id")
    if isinstance(explicit, str) and explicit:
        return explicit
    key = event.get("report_key")
    if isinstance(key, str):
        match = _REPORT_KEY.match(key)
        if match:
            return match.group("id")
    nested = event.get("async_build")
    return _installation_id(nested) if isinstance(nested, Mapping) else None


# --- tracing ------------------------------------------------------------------------------------


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Powertools' own rule: on Lambda (``LAMBDA_TASK_ROOT``) unless ``POWERTOOLS_TRACE_DISABLED``."""
    env = os.environ if environ is None else environ
    disabled = env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in {"1", "true", "yes", "on"}
    return bool(env.get("LAMBDA_TASK_ROOT")) and not disabled


@functools.cache
def tracer() -> Any:
    """The process-wide X-Ray tracer (created on first use: it imports the X-Ray SDK)."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def _traced(handler: Handler) -> Handler:
    """``handler`` under the tracer when tracing is on, created at the first invocation."""
    wrapped: list[Handler] = []

    @functools.wraps(handler)
    def run(event: dict[str, Any], context: Any) -> Any:
        if not tracing_enabled():
            return handler(event, context)
        if not wrapped:
            wrapped.append(tracer().capture_lambda_handler(handler, capture_response=False))
        return wrapped[0](event, context)

    return run


# --- the decorator every handler wears ----------------------------------------------------------


def observed(handler: HandlerT) -> HandlerT:
    """Logger context with correlation ids, a lazily created tracer, metrics flushed per invocation."""

    @functools.wraps(handler)
    def with_correlation(event: dict[str, Any], context: Any) -> Any:
        ids = correlation_ids(event, os.environ.get(EXECUTIONS_ARN_ENV, ""))
        if ids:
            logger.append_keys(**ids)
            if "installation_id" in ids:
                metrics.add_metadata(key="installation_id", value=ids["installation_id"])
        try:
            return traced(event, context)
        finally:
            flush_metrics()

    traced = _traced(handler)
    injected = logger.inject_lambda_context(with_correlation, clear_state=True)
    return injected  # type: ignore[return-value]


def flush_metrics() -> None:
    """Print the invocation's metrics as one EMF document (nothing when none were added)."""
    if metrics.metric_set:
        metrics.flush_metrics()
    metrics.clear_metrics()


# --- what operators count -------------------------------------------------------------------------


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    if value:
        metrics.add_metric(name=name, unit=unit, value=value)


def count_by(name: str, dimensions: Mapping[str, str], value: float = 1) -> None:
    """A metric with its own dimensions (e.g. ``error_code``), emitted at once as its own document."""
    if not value or is_metrics_disabled():  # single_metric itself prints even when disabled
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def count_pack_failures(stage: str, failures: Iterable[Any]) -> None:
    """``PackFailures`` per ``error_code`` of one stage's failure list (objects or dicts)."""
    per_code: dict[str, int] = {}
    for failure in failures:
        code = failure.get("error_code") if isinstance(failure, Mapping) else getattr(failure, "error_code", None)
        per_code[str(code or "UNKNOWN")] = per_code.get(str(code or "UNKNOWN"), 0) + 1
    for code, number in sorted(per_code.items()):
        count_by("PackFailures", {"stage": stage, "error_code": code}, number)


INSTALL_ROUTE = "POST /api/v1/packs/install"


def api_route(resolver: Any, event: Mapping[str, Any]) -> str:
    """``METHOD /path/<template>`` of the resolver route an API event matches (``unmatched`` when
    none does): a dimension of bounded cardinality, never the raw path with its pack names."""
    method = str(event.get("httpMethod", "")).upper()
    path = str(event.get("path", ""))
    # powertools keeps its routes in these two lists (what its own _resolve walks).
    for route in [*resolver._static_routes, *resolver._dynamic_routes]:
        if route.method == method and route.rule.match(path):
            return f"{method} {route.path}"
    return f"{method} unmatched"


def count_api_response(route: str, response: Mapping[str, Any]) -> None:
    """``Api4xx`` / ``Api5xx`` per route; ``InstallationsStarted`` when an install created one."""
    status = int(response.get("statusCode", 500))
    if 400 <= status < 500:
        count_by("Api4xx", {"route": route})
    elif status >= 500:
        count_by("Api5xx", {"route": route})
    if route == INSTALL_ROUTE and status == 202:
        try:
            started = json.loads(response.get("body") or "{}").get("data", {})
        except ValueError:
            return
        if started.get("created"):
            count("InstallationsStarted")


def count_environment_lookups(hits: int, misses: int) -> None:
    """``EnvCacheHits`` (an environment already stored: no build) and ``EnvCacheMisses`` (a build)."""
    count("EnvCacheHits", hits)
    count("EnvCacheMisses", misses)


def count_build_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """Counts what the build stage answered (environment cache hits and builds, failures by code) and
    returns it unchanged: a Map item answers ``status`` (``cached`` or a started build) with its
    ``pack_ref``; a direct request answers its summary and failure list (an asynchronous one only
    acknowledges, and its build is counted when it runs)."""
    summary = answer.get("summary")
    if isinstance(summary, Mapping):
        built = int(summary.get("python_envs_built", 0)) + int(summary.get("nodejs_envs_built", 0))
        count_environment_lookups(int(summary.get("cache_hits", 0)), built)
        count_pack_failures("build", answer.get("failed_environments") or [])
    elif "pack_ref" in answer and "status" in answer:
        cached = answer.get("status") == "cached"
        count_environment_lookups(int(cached), int(not cached))
    return answer
