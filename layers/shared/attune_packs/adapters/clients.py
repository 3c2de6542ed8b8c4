"""Lazily created, process-wide boto3 clients: the one place AWS calls get their retry policy.

The endpoint comes from boto3's standard settings (``AWS_ENDPOINT_URL`` and the per-service
variants), so the same code talks to AWS or to the local stack.

Retries: botocore's *standard* mode, for every client, configured here once. It retries
throttling, 5xx answers and connection errors with exponential backoff and full jitter (at most
20 s between attempts) and a retry quota that stops retry storms. No adapter retries a call by
hand on top of this: what botocore gives up on becomes a ``TransientError`` / ``ThrottledError``
that the state machine retries with its own bounded backoff (or an HTTP 503). The only loops
left in adapters are for what botocore cannot retry (DynamoDB's ``UnprocessedItems``; the parts
of an S3 managed transfer).
"""

from __future__ import annotations

from functools import cache
from typing import Any

# Attempts include the first call: a throttled call costs at most about 1 + 2 + 4 + 8 s of backoff.
RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 5}
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60


def client_config() -> Any:
    from botocore.config import Config

    return Config(retries=dict(RETRIES), connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)


@cache
def client(service: str) -> Any:
    import boto3

    return boto3.session.Session().client(service, config=client_config())


def reset_clients() -> None:
    """Forget cached clients (the local stack calls this when it changes endpoints)."""
    client.cache_clear()
