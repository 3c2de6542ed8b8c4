"""The embedded local AWS stack: moto on loopback, the real handlers, the real ASL and buildspec.

* moto's server runs in a thread of this process on 127.0.0.1 (S3, DynamoDB, Step Functions,
  Lambda, CodeBuild, IAM). Step Functions executes the real ``statemachine/install_packs.asl.json``.
* Resources are created from ``template.yaml``: table keys and indexes, function environments,
  the state machine's definition substitutions.
* Lambda invocations are answered by the real handler modules, in-process, each with its own
  function environment (the one seam: moto's ``LambdaFunction.invoke``).
* CodeBuild builds run the real buildspec on this machine (:mod:`attune_cli.build_runner`);
  builds that end badly are delivered, as CodeBuild's state-change event, to the functions the
  template subscribes to it.
* S3 objects and DynamoDB items are kept in a project-local folder between runs, incrementally
  (:mod:`attune_cli.persistence`: bodies by digest, a journal of changes, a snapshot on stop);
  DynamoDB requests are serialised as AWS serialises them (:mod:`attune_cli.moto_state`).
* Where moto differs from AWS in a way the pipeline depends on, it is patched to behave as AWS
  does: SendTaskFailure keeps its cause; a task token answers once (a second SendTaskSuccess or
  SendTaskFailure is TaskTimedOut); EventBridge rules invoke Lambda targets.

Only endpoints and runners differ from AWS; every line of business logic is the deployed one.
"""

from __future__ import annotations

import fcntl
import importlib.util
import inspect
import io
import json
import os
import shutil
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from attune_cli.build_runner import BuildRecord, CloudWatchLogSink, LocalBuildRunner, state_change_event
from attune_cli.moto_state import MotoState
from attune_cli.persistence import StateStore
from attune_cli.template import FunctionSpec, Resolver, StackResources

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "attune-local"


@dataclass
class LocalContext:
    """The parts of Lambda's context object that powertools and the handlers read."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class HostedFunction:
    spec: FunctionSpec
    name: str
    environment: dict[str, str]
    module: ModuleType
    handler: Callable[[Any, Any], Any]


def _load_handler(spec: FunctionSpec, name: str) -> tuple[ModuleType, Callable[[Any, Any], Any]]:
    module_name, _, attribute = spec.handler.rpartition(".")
    path = spec.code_uri / f"{module_name.replace('.', '/')}.py"
    loader_spec = importlib.util.spec_from_file_location(f"attune_fn_{spec.logical_id}", path)
    if loader_spec is None or loader_spec.loader is None:
        raise FileNotFoundError(f"handler {spec.handler} of {spec.logical_id} not found at {path}")
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module, getattr(module, attribute)


class LocalStack:
    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        root: Path = PROJECT_ROOT,
        parameters: dict[str, str] | None = None,
        persist: bool = True,
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.state_dir = state_dir or root / ".attune" / "local"
        self.persist = persist
        self.extra_environment = dict(extra_environment or {})  # merged into every hosted function's environment
        self.stack = StackResources.load(root)
        self.parameters = {**self.stack.parameter_defaults(), **(parameters or {})}
        self.functions: dict[str, HostedFunction] = {}
        self.invocations: dict[str, int] = {}
        self._lock_file: io.TextIOWrapper | None = None
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._patches: list[tuple[Any, str, Any]] = []
        self.names: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        self.endpoint = ""
        self.runner: LocalBuildRunner | None = None
        self.store: StateStore | None = None
        self.moto_state: MotoState | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines on the console
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.state_dir / ".lock").open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"another attune-packs process is using the local stack in {self.state_dir}") from exc
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._set_env(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "MOTO_PORT": str(port),
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_SESSION_TOKEN": None,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_PROFILE": None,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "NO_PROXY": "127.0.0.1,localhost",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
                "POWERTOOLS_METRICS_DISABLED": "true",  # EMF documents would land on the CLI's stdout
            }
        )
        import requests

        # moto's backends live in this process: start from nothing, then restore our own state.
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10)
        requests.post(
            f"{self.endpoint}/moto-api/config",
            timeout=10,
            json={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
        )
        from attune_packs import wiring

        wiring.reset()
        self._install_patches()
        self._create_resources()
        self.store = StateStore(self.state_dir) if self.persist else None
        self.moto_state = MotoState(ACCOUNT, REGION, self.table, self.bucket, self.store)
        self.moto_state.install(self._patch)
        if self.store is not None:
            stored = self.store.load()
            self.moto_state.restore(stored)
            self.store.snapshot(stored)  # the journal starts empty: it holds this run's changes only
            self.store.open()

    def stop(self) -> None:
        try:
            if self.runner is not None:
                self.runner.wait_all(timeout=1800)
            if self.store is not None:
                self.store.close()
                self.store.snapshot(self.store.load())
                self.store = None
        finally:
            for owner, name, original in reversed(self._patches):
                setattr(owner, name, original)
            self._patches.clear()
            if self._server is not None:
                self._server.stop()
                self._server = None
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            from attune_packs import wiring

            wiring.reset()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def _set_env(self, values: dict[str, str | None]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- clients ---------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
        )

    @property
    def bucket(self) -> str:
        return self.names[self.stack.single("AWS::S3::Bucket")[0]]

    @property
    def table(self) -> str:
        return self.names[self.stack.single("AWS::DynamoDB::Table")[0]]

    @property
    def state_machine_arn(self) -> str:
        return self.arns[self.stack.state_machine()[0]]

    @property
    def build_project(self) -> str:
        return self.names[self.stack.single("AWS::CodeBuild::Project")[0]]

    # -- resources from template.yaml ------------------------------------------------------------
    def _create_resources(self) -> None:
        bucket_id, _ = self.stack.single("AWS::S3::Bucket")
        table_id, table_args = self.stack.table_definition()
        project_id, project = self.stack.single("AWS::CodeBuild::Project")
        machine_id, asl_path, substitutions = self.stack.state_machine()
        self.names[bucket_id] = f"{PREFIX}-{bucket_id.lower()}"
        self.names[table_id] = f"{PREFIX}-{table_id}"
        self.names[project_id] = f"{PREFIX}-{project_id}"
        self.names[machine_id] = "attune-local-install-packs"
        self.arns[machine_id] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.names[machine_id]}"
        self.arns[bucket_id] = f"arn:aws:s3:::{self.names[bucket_id]}"
        for spec in self.stack.functions():
            self.names[spec.logical_id] = f"{PREFIX}-{spec.logical_id}"
            self.arns[spec.logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-{spec.logical_id}"
        # Ref of a state machine is its ARN; of other resources, their name.
        resolve = Resolver({**self.names, machine_id: self.arns[machine_id]}, self.arns, self.parameters)
        self._resolve = resolve

        self.client("s3").create_bucket(Bucket=self.names[bucket_id])
        # The bucket sends its object events to EventBridge, as the template's NotificationConfiguration says.
        self.client("s3").put_bucket_notification_configuration(
            Bucket=self.names[bucket_id], NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        self._enable_bucket_eventbridge(self.names[bucket_id])
        self.client("dynamodb").create_table(TableName=self.names[table_id], **table_args)
        role = self.client("iam").create_role(
            RoleName=f"{PREFIX}-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        environment = project["Properties"]["Environment"]
        self.client("codebuild").create_project(
            # moto insists on a source location even for NO_SOURCE projects (AWS does not).
            name=self.names[project_id],
            source={"type": "NO_SOURCE", "location": "none", "buildspec": project["Properties"]["Source"]["BuildSpec"]},
            artifacts={"type": "NO_ARTIFACTS"},
            serviceRole=role,
            environment={
                "type": environment["Type"],
                "image": environment["Image"],
                "computeType": environment["ComputeType"],
            },
        )
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "# hosted in-process by the local stack\n")
        lambda_client = self.client("lambda")
        for spec in self.stack.functions():
            name = self.names[spec.logical_id]
            env = {k: str(resolve(v)) for k, v in spec.environment.items()}
            env["ALLOW_LOCAL_SOURCES"] = "true"  # local paths as sources: the local stack only
            env.update(self.extra_environment)
            lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler=spec.handler,
                Code={"ZipFile": code.getvalue()},
                Timeout=spec.timeout,
                Environment={"Variables": env},
            )
            module, handler = _load_handler(spec, name)
            self.functions[name] = HostedFunction(spec, name, env, module, handler)
        self._create_event_rules(resolve)
        definition = asl_path.read_text()
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", str(resolve(value)))
        self.client("stepfunctions").create_state_machine(
            name=self.names[machine_id], definition=definition, roleArn=role, type="STANDARD"
        )
        base_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        base_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base_env.get('PATH', '')}"
        self.runner = LocalBuildRunner(
            base_env,
            self.state_dir / "builds",
            self._build_finished,
            log_sink=CloudWatchLogSink(self.client("logs"), self._build_log_group(project_id, project)),
        )

    def _build_log_group(self, project_id: str, project: dict[str, Any]) -> str:
        """The CloudWatch log group builds write to: the project's LogsConfig group (a log group
        of the template gets a local name), else CodeBuild's default ``/aws/codebuild/<project>``."""
        logs = (project["Properties"].get("LogsConfig") or {}).get("CloudWatchLogs") or {}
        group = logs.get("GroupName")
        if isinstance(group, dict) and "Ref" in group and group["Ref"] in self.stack.resources:
            self.names.setdefault(group["Ref"], f"/aws/codebuild/{PREFIX}-{group['Ref']}")
        if group and logs.get("Status", "ENABLED") == "ENABLED":
            return str(Resolver(self.names, self.arns, self.parameters)(group))
        return f"/aws/codebuild/{self.names[project_id]}"

    @staticmethod
    def _enable_bucket_eventbridge(bucket: str) -> None:
        # moto 5.2 reads an empty <EventBridgeConfiguration/> as "not configured"; AWS enables it.
        from moto.s3.models import s3_backends

        configuration = s3_backends[ACCOUNT]["aws"].buckets[bucket].notification_configuration
        if configuration is not None and configuration.event_bridge is None:
            configuration.event_bridge = {}

    def _create_event_rules(self, resolve: Resolver) -> None:
        """The template's EventBridgeRule function events, as moto rules targeting the functions."""
        events = self.client("events")
        for spec in self.stack.functions():
            for event_id, subscription in spec.events.items():
                if subscription.get("Type") != "EventBridgeRule":
                    continue
                pattern = _resolve_pattern(subscription["Properties"]["Pattern"], resolve)
                rule = f"{PREFIX}-{spec.logical_id}-{event_id}"
                events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
                events.put_targets(Rule=rule, Targets=[{"Id": "function", "Arn": self.arns[spec.logical_id]}])

    # -- the Lambda seam -------------------------------------------------------------------------
    def invoke(self, function_name: str, event: Any) -> Any:
        """Call a hosted function's real handler in its own environment (raises what it raises)."""
        from attune_packs import wiring

        hosted = self.functions[function_name.rsplit(":", 1)[-1] if function_name.startswith("arn:") else function_name]
        self.invocations[hosted.spec.logical_id] = self.invocations.get(hosted.spec.logical_id, 0) + 1
        with wiring.function_environment(hosted.environment):
            return hosted.handler(event, LocalContext(hosted.name))

    def _install_patches(self) -> None:
        """Where moto behaves unlike AWS, make it behave as AWS does (each patch says how)."""
        self._patch_lambda_invoke()
        self._patch_codebuild()
        self._patch_task_tokens()
        self._patch_event_targets()

    def _patch_lambda_invoke(self) -> None:
        """Lambda invocations of hosted functions call the real handler in-process (moto would use Docker)."""
        from moto.awslambda_simple.models import LambdaSimpleBackend

        stack = self
        original_invoke = LambdaSimpleBackend.invoke

        def invoke(
            backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
        ) -> Any:
            name = function_name.rsplit(":function:", 1)[-1].split(":", 1)[0]
            if name not in stack.functions:
                return original_invoke(backend, function_name, qualifier, body, headers, response_headers)
            event = json.loads(body) if body else {}
            if headers.get("X-Amz-Invocation-Type", headers.get("x-amz-invocation-type")) == "Event":
                threading.Thread(target=stack._invoke_quietly, args=(name, event), daemon=True).start()
                return b""
            try:
                result = stack.invoke(name, event)
            except Exception as exc:  # noqa: BLE001 - reported to the caller as Lambda does
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(
                    {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
                ).encode()
            return json.dumps(result).encode()

        self._patch(LambdaSimpleBackend, "invoke", invoke)

    def _patch_codebuild(self) -> None:
        """StartBuild runs the buildspec on the local runner (moto never runs a build); an idempotency
        token starts one build; BatchGetBuilds answers from every project's history."""
        from moto.codebuild.models import CodeBuildBackend
        from moto.codebuild.responses import CodeBuildResponse
        from moto.core.responses import ActionResult

        stack = self
        original_start = CodeBuildResponse.start_build
        tokens: dict[str, dict[str, Any]] = {}

        def start_build(response: Any) -> Any:
            token = response._get_param("idempotencyToken")
            if token and token in tokens:
                return ActionResult({"build": tokens[token]})
            result = original_start(response)
            project = response._get_param("projectName")
            metadata = response.codebuild_backend.build_metadata[project].build_metadata
            if token:
                tokens[token] = metadata
            assert stack.runner is not None
            stack.runner.submit(
                metadata,
                response._get_param("environmentVariablesOverride") or [],
                response._get_param("buildspecOverride") or "",
                int(response._get_param("timeoutInMinutesOverride") or 60),
            )
            return result

        def batch_get_builds(backend: Any, ids: list[str]) -> list[dict[str, Any]]:
            return [b for history in backend.build_metadata_history.values() for b in history if b["id"] in ids]

        self._patch(CodeBuildResponse, "start_build", start_build)
        self._patch(CodeBuildBackend, "batch_get_builds", batch_get_builds)

    def _patch_task_tokens(self) -> None:
        """A task token answers once (moto accepts a second answer; AWS raises TaskTimedOut), and
        SendTaskFailure keeps its ``cause`` (moto 5.2 drops it; it carries build logs)."""
        from moto.core.responses import EmptyResult
        from moto.stepfunctions.parser.api import TaskTimedOut
        from moto.stepfunctions.responses import StepFunctionResponse

        answered: set[str] = set()
        answering = threading.Lock()

        def answer_once(token: str, deliver: Callable[[], Any]) -> Any:
            with answering:
                if token in answered:
                    raise TaskTimedOut("Task Timed Out: the task token was already answered", "TaskTimedOut")  # as AWS
                result = deliver()  # a refused first answer leaves the token open, as on AWS
                answered.add(token)
                return result

        def send_task_failure(response: Any) -> Any:
            token = response._get_param("taskToken")
            answer_once(
                token,
                lambda: response.stepfunction_backend.send_task_failure(
                    token, error=response._get_param("error"), cause=response._get_param("cause")
                ),
            )
            return EmptyResult()

        original_success = StepFunctionResponse.send_task_success

        def send_task_success(response: Any) -> Any:
            return answer_once(response._get_param("taskToken"), lambda: original_success(response))

        self._patch(StepFunctionResponse, "send_task_failure", send_task_failure)
        self._patch(StepFunctionResponse, "send_task_success", send_task_success)

    def _patch_event_targets(self) -> None:
        """Rule matches reach hosted Lambda targets asynchronously, as on AWS (moto delivers to queues
        and logs only)."""
        from moto.events.models import Rule

        stack = self
        original_send = Rule.send_to_targets

        def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
            hosted = [str(t.get("Arn", "")).rsplit(":function:", 1)[-1] for t in rule.targets]
            if not all(name in stack.functions for name in hosted):
                original_send(rule, event, transform_input)
                return
            if rule.event_pattern.matches_event(event):
                for name in hosted:
                    threading.Thread(target=stack._invoke_quietly, args=(name, dict(event)), daemon=True).start()

        self._patch(Rule, "send_to_targets", send_to_targets)

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        # as stored (a staticmethod stays one when it is put back)
        self._patches.append((owner, name, inspect.getattr_static(owner, name)))
        setattr(owner, name, replacement)

    def _invoke_quietly(self, function_name: str, event: Any) -> None:
        try:
            self.invoke(function_name, event)
        except Exception as exc:  # noqa: BLE001 - an async invocation has nobody to raise to
            print(f"[local stack] async invocation of {function_name} failed: {exc!r}", file=sys.stderr)

    # -- EventBridge for build-state changes -----------------------------------------------------
    def _build_finished(self, record: BuildRecord) -> None:
        event = state_change_event(record)
        for hosted in self.functions.values():
            for subscription in hosted.spec.events.values():
                if subscription.get("Type") != "EventBridgeRule":
                    continue
                pattern = _resolve_pattern(
                    subscription["Properties"]["Pattern"], Resolver(self.names, self.arns, self.parameters)
                )
                if matches(pattern, event):
                    self._invoke_quietly(hosted.name, event)


def reset_state(state_dir: Path) -> None:
    shutil.rmtree(state_dir, ignore_errors=True)


def _resolve_pattern(pattern: Any, resolve: Resolver) -> Any:
    if isinstance(pattern, dict) and ("Ref" in pattern or any(k.startswith("Fn::") for k in pattern)):
        return resolve(pattern)
    if isinstance(pattern, dict):
        return {k: _resolve_pattern(v, resolve) for k, v in pattern.items()}
    if isinstance(pattern, list):
        return [_resolve_pattern(v, resolve) for v in pattern]
    return pattern


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching for the pattern forms the template uses: lists of exact values,
    nested objects."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches(expected, actual):
                return False
        elif isinstance(expected, list):
            if actual not in expected:
                return False
        elif actual != expected:
            return False
    return True


@contextmanager
def running(state_dir: Path | None = None, **kwargs: Any) -> Iterator[LocalStack]:
    stack = LocalStack(state_dir, **kwargs)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
