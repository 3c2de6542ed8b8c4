"""Build logs in CloudWatch (moto): the build runner writes them as CodeBuild does, and the reader
that failed builds quote reads them back."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto import mock_aws

from attune_cli.build_runner import CloudWatchLogSink, LocalBuildRunner, state_change_event
from attune_packs.adapters.logs import CloudWatchLogReader


def test_the_cloudwatch_reader_returns_the_last_lines_oldest_first_and_nothing_for_a_missing_stream() -> None:
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName="g")
        client.create_log_stream(logGroupName="g", logStreamName="s")
        now = int(time.time() * 1000)
        events = [{"timestamp": now + n, "message": f"line {n}\n"} for n in range(100)]
        client.put_log_events(logGroupName="g", logStreamName="s", logEvents=events)
        reader = CloudWatchLogReader(client)
        assert reader.tail("g", "s", lines=3) == ["line 97", "line 98", "line 99"]
        assert reader.tail("g", "other") == []


def test_the_log_reads_like_codebuilds_and_goes_to_cloudwatch_under_the_build_uuid(tmp_path: Path) -> None:
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        finished = threading.Event()
        runner = LocalBuildRunner(
            {"PATH": "/usr/bin:/bin"},
            tmp_path / "logs",
            lambda _record: finished.set(),
            log_sink=CloudWatchLogSink(client, "/aws/codebuild/proj"),
        )
        spec = yaml.safe_dump({"version": 0.2, "phases": {"pre_build": {"commands": ["echo fetching", "false"]}}})
        metadata: dict[str, Any] = {"id": "proj:6a1c", "arn": "arn:build/proj:6a1c", "projectName": "proj"}
        runner.submit(metadata, [], spec, 1)
        assert finished.wait(60)
        [record] = runner.records.values()
        assert record.metadata["logs"]["groupName"] == "/aws/codebuild/proj"
        assert record.metadata["logs"]["streamName"] == "6a1c"
        events = client.get_log_events(logGroupName="/aws/codebuild/proj", logStreamName="6a1c", startFromHead=True)
        lines = [e["message"] for e in events["events"]]
        assert lines == record.log_path.read_text().splitlines(), "CloudWatch holds the whole log, in order"
        assert "fetching" in lines and "[Container] Running command false" in lines
        assert "[Container] Command did not exit successfully false exit status 1" in lines
        assert any(line.endswith("Phase complete: PRE_BUILD State: FAILED") for line in lines)
        assert all(e["timestamp"] <= int(time.time() * 1000) for e in events["events"])
        logs = state_change_event(record)["detail"]["additional-information"]["logs"]
        assert (logs["group-name"], logs["stream-name"]) == ("/aws/codebuild/proj", "6a1c")
