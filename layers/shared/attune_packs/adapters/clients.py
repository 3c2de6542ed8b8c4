"""Lazily created, process-wide boto3 clients.

The endpoint comes from boto3's standard settings (``AWS_ENDPOINT_URL`` and the per-service
variants), so the same code talks to AWS or to the local stack.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_RETRIES = {"max_attempts": 8, "mode": "adaptive"}


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(service, config=Config(retries=_RETRIES, connect_timeout=5, read_timeout=60))


def reset_clients() -> None:
    """Forget cached clients (the local stack calls this when it changes endpoints)."""
    client.cache_clear()
