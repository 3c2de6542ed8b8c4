"""The local stack's API Gateway: serves the HTTP API on loopback through the same authorizer and
API function the template wires, with the template's gateway responses.

A request becomes an API Gateway REST proxy event; the TOKEN authorizer runs first (its answer is
cached per token for the template's ReauthorizeEvery seconds, as API Gateway does); a refusal is
the template's UNAUTHORIZED gateway response; otherwise the API function answers.

One route is the local stack's own: ``GET /_local/health`` (no token) says which service answers
(its pid and state dir), so the CLI never mistakes another process on a recycled port for it.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from attune_cli.local_stack import ACCOUNT, REGION, LocalStack


class LocalApiGateway:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        api_id, api = stack.stack.single("AWS::Serverless::Api")
        props = api["Properties"]
        self.stage = props.get("StageName", "v1")
        auth = props["Auth"]
        authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
        self.authorizer_function = stack.names[authorizer["FunctionArn"]["Fn::GetAtt"][0]]
        self.cache_seconds = int(authorizer.get("Identity", {}).get("ReauthorizeEvery", 300))
        self.header = authorizer.get("Identity", {}).get("Header", "Authorization")
        self.gateway_responses = props.get("GatewayResponses", {})
        self.api_function = self._function_serving(api_id)
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def _function_serving(self, api_id: str) -> str:
        for spec in self.stack.stack.functions():
            for event in spec.events.values():
                if event.get("Type") == "Api" and event["Properties"].get("RestApiId") == {"Ref": api_id}:
                    return self.stack.names[spec.logical_id]
        raise ValueError(f"no function serves {api_id} in template.yaml")

    # -- API Gateway behaviour -------------------------------------------------------------------
    def _gateway_response(self, kind: str, default_status: int) -> Response:
        spec = self.gateway_responses.get(kind, {})
        body = spec.get("ResponseTemplates", {}).get("application/json", '{"message": "error"}')
        return Response(body, status=int(spec.get("StatusCode", default_status)), content_type="application/json")

    def _authorize(self, token: str | None, method_arn: str) -> dict[str, Any] | None:
        if not token:
            return None
        with self._lock:
            cached = self._cache.get(token)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        try:
            answer = self.stack.invoke(
                self.authorizer_function, {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
            )
        except Exception:  # noqa: BLE001 - "Unauthorized" (or any failure) is a 401, as on AWS
            answer = None
        with self._lock:
            self._cache[token] = (time.monotonic() + self.cache_seconds, answer)
        return answer

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/_local/health" and request.method == "GET":
            health = {"service": "attune-local", "pid": os.getpid(), "state_dir": str(self.stack.state_dir)}
            return Response(json.dumps(health), content_type="application/json")
        method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/{self.stage}/{request.method}{path}"
        answer = self._authorize(request.headers.get(self.header), method_arn)
        if answer is None:
            return self._gateway_response("UNAUTHORIZED", 401)
        if not any(s.get("Effect") == "Allow" for s in answer.get("policyDocument", {}).get("Statement", [])):
            return self._gateway_response("ACCESS_DENIED", 403)
        body = request.get_data()
        is_text = True
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_text = base64.b64encode(body).decode(), False
        headers = {k: v for k, v in request.headers.items()}
        event = {
            "resource": "/api/v1/{proxy+}",
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": {k: request.headers.getlist(k) for k in headers},
            "queryStringParameters": {k: v for k, v in request.args.items()} or None,
            "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in request.args} or None,
            "pathParameters": {"proxy": path.removeprefix("/api/v1/")},
            "stageVariables": None,
            "requestContext": {
                "resourcePath": "/api/v1/{proxy+}",
                "httpMethod": request.method,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "accountId": ACCOUNT,
                "identity": {"sourceIp": request.remote_addr or "127.0.0.1"},
                "authorizer": {**answer.get("context", {}), "principalId": answer.get("principalId")},
            },
            "body": text if body else None,
            "isBase64Encoded": not is_text,
        }
        try:
            result = self.stack.invoke(self.api_function, event)
        except Exception:  # noqa: BLE001 - a crashed integration is API Gateway's 502
            return self._gateway_response("DEFAULT_5XX", 502)
        payload = result.get("body") or ""
        if result.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        response = Response(payload, status=int(result.get("statusCode", 200)))
        # API Gateway merges both maps; a header in multiValueHeaders replaces the single value.
        headers: dict[str, list[str]] = {k: [v] for k, v in (result.get("headers") or {}).items()}
        headers.update({k: list(v) for k, v in (result.get("multiValueHeaders") or {}).items()})
        for key, values in headers.items():
            response.headers.setlist(key, values)
        return response


class LocalApiServer:
    """Serves a LocalApiGateway on 127.0.0.1 in a background thread."""

    def __init__(self, stack: LocalStack, port: int = 0) -> None:
        self.gateway = LocalApiGateway(stack)
        self._server: BaseWSGIServer = make_server("127.0.0.1", port, self.gateway, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
