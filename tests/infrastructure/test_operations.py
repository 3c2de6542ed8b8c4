"""Operations on the synthesized template (what CloudFormation receives after the SAM transform):
alarms and a dashboard an on-call engineer can act on, log retention, tracing, deploy safety,
and no event given up on silently."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from attune_cli.template import StackResources
from attune_packs import observability, settings

ROOT = Path(__file__).resolve().parents[2]

NOTIFIES = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


@pytest.fixture(scope="module")
def resources(synthesized: dict[str, Any]) -> dict[str, Any]:
    return dict(synthesized["Resources"])


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def _alarms_on(resources: dict[str, Any], namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        a["Properties"]
        for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == namespace and a["Properties"].get("MetricName") == metric
    ]


def _dimension(alarm: dict[str, Any], name: str) -> Any:
    [value] = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == name]
    return value


# --- alarms -----------------------------------------------------------------------------------


def test_failed_and_timed_out_installations_alarm_on_the_state_machine(resources: dict[str, Any]) -> None:
    [machine] = _of_type(resources, "AWS::StepFunctions::StateMachine")
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        [alarm] = _alarms_on(resources, "AWS/States", metric)
        assert _dimension(alarm, "StateMachineArn") == {"Ref": machine}
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_every_function_alarms_on_its_errors_and_its_throttles(resources: dict[str, Any]) -> None:
    functions = set(_of_type(resources, "AWS::Lambda::Function"))
    assert len(functions) == 8
    for metric in ("Errors", "Throttles"):
        watched = [_dimension(a, "FunctionName") for a in _alarms_on(resources, "AWS/Lambda", metric)]
        assert sorted(w["Ref"] for w in watched) == sorted(functions), metric


def test_the_undelivered_events_queue_alarms_as_soon_as_it_holds_a_message(resources: dict[str, Any]) -> None:
    [queue] = _of_type(resources, "AWS::SQS::Queue")
    [alarm] = _alarms_on(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert _dimension(alarm, "QueueName") == {"Fn::GetAtt": [queue, "QueueName"]}
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Maximum", 1)


def test_failed_environment_builds_alarm_on_the_build_project(resources: dict[str, Any]) -> None:
    [project] = _of_type(resources, "AWS::CodeBuild::Project")
    [alarm] = _alarms_on(resources, "AWS/CodeBuild", "FailedBuilds")
    assert _dimension(alarm, "ProjectName") == {"Ref": project}


def test_the_api_alarms_on_its_5xx_rate_of_its_own_stage(resources: dict[str, Any]) -> None:
    [(stage_id, stage)] = _of_type(resources, "AWS::ApiGateway::Stage").items()
    [api] = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    [alarm] = [
        a["Properties"]
        for a in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if any(
            m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "5XXError"
            for m in a["Properties"].get("Metrics", [])
        )
    ]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m}
    [expression] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert {stats[i]["MetricName"] for i in ("errors", "requests")} == {"5XXError", "Count"}
    for metric in stats.values():
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dims == {"ApiName": api["Properties"]["Name"], "Stage": stage["Properties"]["StageName"]}, stage_id
    assert "errors / requests" in expression["Expression"]


def test_every_alarm_notifies_the_optional_topic_on_alarm_and_on_recovery(synthesized: dict[str, Any]) -> None:
    assert synthesized["Parameters"]["AlarmTopicArn"]["Default"] == ""
    alarms = _of_type(synthesized["Resources"], "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 21
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == NOTIFIES and props["OKActions"] == NOTIFIES, logical_id
        assert props["TreatMissingData"] == "notBreaching", logical_id
        assert "docs/runbook.md#" in props["AlarmDescription"], logical_id


def test_every_alarm_description_points_at_a_runbook_section_that_exists(resources: dict[str, Any]) -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    for logical_id, alarm in _of_type(resources, "AWS::CloudWatch::Alarm").items():
        anchor = alarm["Properties"]["AlarmDescription"].split("docs/runbook.md#", 1)[1].split()[0].rstrip(".")
        assert anchor in anchors, (logical_id, anchor)


# --- dashboard --------------------------------------------------------------------------------


def _dashboard_metrics(resources: dict[str, Any]) -> list[list[Any]]:
    [dashboard] = _of_type(resources, "AWS::CloudWatch::Dashboard").values()
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))
    return [m for widget in body["widgets"] for m in widget["properties"]["metrics"]]


def test_the_dashboard_shows_what_operators_watch(resources: dict[str, Any]) -> None:
    metrics = _dashboard_metrics(resources)
    named = {(m[0], m[1]) for m in metrics if isinstance(m[0], str)}
    searched = " ".join(m[0]["expression"] for m in metrics if isinstance(m[0], dict))
    ns = observability.NAMESPACE
    assert {
        (ns, "InstallationsStarted"),
        ("AWS/States", "ExecutionsSucceeded"),
        ("AWS/States", "ExecutionsFailed"),
        ("AWS/States", "ExecutionsTimedOut"),
        (ns, "EnvCacheHits"),
        (ns, "EnvCacheMisses"),
        ("AWS/CodeBuild", "Duration"),
        (ns, "PacksRegistered"),
        (ns, "RegistrationItemsWritten"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
    } <= named
    for metric in ("PackFailures", "Api4xx", "Api5xx"):
        assert f"{{{ns}," in searched and f'MetricName="{metric}"' in searched, metric
    assert "duration / 60" in searched, "build minutes"


def test_the_dashboard_reads_the_namespace_and_dimensions_the_functions_emit(resources: dict[str, Any]) -> None:
    # The functions emit every metric with the `service` dimension (powertools' default).
    for metric in _dashboard_metrics(resources):
        if metric[0] == observability.NAMESPACE:
            assert metric[2:4] == ["service", observability.SERVICE], metric


# --- logs -------------------------------------------------------------------------------------


def test_every_log_group_keeps_its_events_for_the_retention_parameter(synthesized: dict[str, Any]) -> None:
    resources = synthesized["Resources"]
    assert synthesized["Parameters"]["LogRetentionDays"]["Default"] == 30
    groups = _of_type(resources, "AWS::Logs::LogGroup")
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id
    for logical_id, function in _of_type(resources, "AWS::Lambda::Function").items():
        target = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert target["Ref"] in groups, logical_id
    [project] = _of_type(resources, "AWS::CodeBuild::Project").values()
    assert project["Properties"]["LogsConfig"]["CloudWatchLogs"]["GroupName"]["Ref"] in groups


# --- tracing ----------------------------------------------------------------------------------


def test_functions_the_state_machine_and_the_api_stage_are_traced(resources: dict[str, Any]) -> None:
    for logical_id, function in _of_type(resources, "AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, logical_id
    [machine] = _of_type(resources, "AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    [stage] = _of_type(resources, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True


def test_xray_writes_are_granted_to_traced_roles_only_and_metrics_need_no_permission(
    resources: dict[str, Any],
) -> None:
    traced_roles = {
        (props.get("Role") or props["RoleArn"])["Fn::GetAtt"][0]
        for kind in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine")
        for props in (r["Properties"] for r in _of_type(resources, kind).values())
        if props.get("TracingConfig", {}).get("Mode") == "Active"
        or props.get("TracingConfiguration", {}).get("Enabled")
    }
    for logical_id, role in _of_type(resources, "AWS::IAM::Role").items():
        managed = [str(a) for a in role["Properties"].get("ManagedPolicyArns", [])]
        has_xray = any("AWSXrayWriteOnlyAccess" in a for a in managed)
        assert has_xray == (logical_id in traced_roles), logical_id
        assert "cloudwatch:PutMetricData" not in json.dumps(role), "EMF metrics travel in the logs"


# --- deploy safety ----------------------------------------------------------------------------


def test_the_table_and_the_bucket_survive_a_delete_or_a_replacement(resources: dict[str, Any]) -> None:
    for kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket"):
        [resource] = _of_type(resources, kind).values()
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain"), kind


def test_the_table_can_be_restored_to_a_point_in_time_and_prod_cannot_be_deleted(resources: dict[str, Any]) -> None:
    [table] = _of_type(resources, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


def test_the_bucket_is_versioned_encrypted_private_and_tls_only(resources: dict[str, Any]) -> None:
    [(bucket_id, bucket)] = _of_type(resources, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(
        props["PublicAccessBlockConfiguration"][k] is True
        for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    )
    noncurrent = [r for r in props["LifecycleConfiguration"]["Rules"] if "NoncurrentVersionExpiration" in r]
    assert noncurrent, "old versions expire instead of growing forever"
    [policy] = _of_type(resources, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_eventbridge_target_retries_then_dead_letters_into_the_alarmed_queue(resources: dict[str, Any]) -> None:
    [queue] = _of_type(resources, "AWS::SQS::Queue")
    rules = _of_type(resources, "AWS::Events::Rule")
    assert len(rules) == 2
    for logical_id, rule in rules.items():
        for target in rule["Properties"]["Targets"]:
            assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, logical_id
            assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400, logical_id
            assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}, logical_id
    [policy] = _of_type(resources, "AWS::SQS::QueuePolicy").values()
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(s["Fn::GetAtt"][0] for s in sources) == sorted(rules), "only this stack's rules may dead-letter"


def test_asynchronously_invoked_functions_keep_what_still_fails_in_the_same_queue(resources: dict[str, Any]) -> None:
    [queue] = _of_type(resources, "AWS::SQS::Queue")
    async_targets = {
        t["Arn"]["Fn::GetAtt"][0]
        for r in _of_type(resources, "AWS::Events::Rule").values()
        for t in r["Properties"]["Targets"]
    } | {"BuildPackEnvsFunction"}  # the API's asynchronous builds
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in _of_type(resources, "AWS::Lambda::EventInvokeConfig").values()
    }
    assert set(configs) == async_targets
    for function, config in configs.items():
        assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue, "Arn"]}, function


def test_the_stage_parameter_tags_every_function_and_guards_the_prod_table(synthesized: dict[str, Any]) -> None:
    assert synthesized["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    for logical_id, function in _of_type(synthesized["Resources"], "AWS::Lambda::Function").items():
        assert {"Key": "attune:stage", "Value": {"Ref": "Stage"}} in function["Properties"]["Tags"], logical_id


# --- per-function settings ----------------------------------------------------------------------


def test_every_function_gets_the_settings_its_model_requires_from_the_template() -> None:
    for spec in StackResources.load(ROOT).functions():
        model = getattr(settings, f"{spec.logical_id.removesuffix('Function')}Settings")
        environ = {name: f"value-of-{name}" for name in spec.environment}
        environ.update({"KEEP_VERSIONS": "5", "MAX_ARCHIVE_BYTES": "1", "MAX_DEPENDENCY_ROUNDS": "1"})
        settings.validate_settings(model, environ)  # raises, naming the variable, when one is missing
