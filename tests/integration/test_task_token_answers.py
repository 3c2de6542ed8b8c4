"""The local stack answers a task token once, as AWS does: a second answer is TaskTimedOut."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from attune_cli.local_stack import LocalStack


def _waiting_task_token(stack: LocalStack) -> str:
    """Start an execution that waits on a task token (sent through SQS) and return the token."""
    sqs, sfn = stack.client("sqs"), stack.client("stepfunctions")
    queue_url = sqs.create_queue(QueueName="token-answers")["QueueUrl"]
    definition = {
        "StartAt": "Wait for an answer",
        "States": {
            "Wait for an answer": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name="answer-once",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/local",
    )["stateMachineArn"]
    sfn.start_execution(stateMachineArn=machine, name="answer-once-1", input="{}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            return str(json.loads(messages[0]["Body"])["token"])
    pytest.fail("the execution never sent its task token")


def test_a_second_answer_to_a_task_token_is_refused_with_task_timed_out(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "state") as stack:
        token = _waiting_task_token(stack)
        sfn = stack.client("stepfunctions")
        sfn.send_task_success(taskToken=token, output="{}")

        with pytest.raises(ClientError) as second:
            sfn.send_task_failure(taskToken=token, error="Late", cause="a late build-state event")

        assert second.value.response["Error"]["Code"] == "TaskTimedOut"
        assert second.value.response["Error"]["Message"]
