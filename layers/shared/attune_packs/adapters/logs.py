"""Reading the last lines of an environment build's log from CloudWatch Logs.

CodeBuild streams each build's output to ``<group>/<build-uuid>`` (the group from the project's
``LogsConfig``). When a build fails before its buildspec can say why (install or pre_build), those
lines are the only explanation; the local build runner writes the same group and stream to moto.
"""

from __future__ import annotations

from typing import Any, Protocol

from attune_packs.adapters.clients import client
from attune_packs.errors import ThrottledError, TransientError

_THROTTLE_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException"}


class LogReader(Protocol):
    def tail(self, group: str, stream: str, *, lines: int = 40) -> list[str]: ...


class CloudWatchLogReader:
    def __init__(self, client: Any) -> None:
        self._logs = client

    def tail(self, group: str, stream: str, *, lines: int = 40) -> list[str]:
        """The last ``lines`` events of the stream, oldest first; empty when it does not exist (yet)."""
        from botocore.exceptions import ClientError

        try:
            response = self._logs.get_log_events(
                logGroupName=group, logStreamName=stream, startFromHead=False, limit=max(1, min(lines, 10_000))
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return []
            if code in _THROTTLE_CODES:
                raise ThrottledError(f"CloudWatch Logs throttled reading {group}/{stream}") from exc
            raise TransientError(f"reading the build log {group}/{stream} failed: {code}") from exc
        return [str(event.get("message", "")).rstrip("\n") for event in response.get("events", [])]


def log_reader() -> CloudWatchLogReader:
    """A reader on the process-wide logs client (built lazily, reset with the other clients)."""
    return CloudWatchLogReader(client("logs"))
