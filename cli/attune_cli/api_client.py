"""The CLI against a deployed stack's HTTP API (or the local stack's API server).

Same operations as the boto3 backend, through the API's routes with a bearer token. Progress is
rebuilt from the installation's stage transitions, so the CLI shows the same lines either way.

Calls go through the standard library's HTTP client (importing ``requests`` would cost a read-only
command more than its whole round trip to the local stack); redirects are never followed, so the
token only goes where it was told to; proxies from the environment apply to remote APIs only.
"""

from __future__ import annotations

import json as _json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from attune_packs.errors import AttuneError, NotFoundError

if TYPE_CHECKING:  # pydantic's import costs a read-only command more than its whole request
    import urllib.request

    from attune_cli.backends import Execution, ExecutionResult
    from attune_packs.models import InstallRequest

CONFIG_PATH = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "attune-packs" / "config.json"


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in {"localhost", "127.0.0.1", "::1"}:  # the local service's (without importing ipaddress)
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(url: str) -> urllib.request.OpenerDirector:
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        """A redirect is answered as the error it is for an API client (the token must not follow it)."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[Any] = [NoRedirects()]
    if _loopback(url):
        handlers.append(urllib.request.ProxyHandler({}))  # proxies apply to real stacks only
    return urllib.request.build_opener(*handlers)


def multipart_form(fields: dict[str, str], file: tuple[str, str, bytes, str]) -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) of text ``fields`` and one file part
    (field name, file name, content, content type); with its Content-Type header value."""
    boundary = f"attune-{os.urandom(16).hex()}"
    name, filename, content, content_type = file
    quoted = filename.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{quoted}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _send_direct(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, str, bytes]:
    import http.client

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), data, headers)
        response = connection.getresponse()
        return response.status, response.reason, response.read()
    finally:
        connection.close()


class ApiError(AttuneError):
    """The API answered with an error body."""


def api_settings(api_url: str | None, token: str | None) -> tuple[str | None, str | None]:
    """--api-url/--token, else ATTUNE_API_URL/ATTUNE_TOKEN, else the config file."""
    config: dict[str, Any] = {}
    if CONFIG_PATH.is_file():
        config = _json.loads(CONFIG_PATH.read_text())
    url = api_url or os.environ.get("ATTUNE_API_URL") or config.get("api_url")
    secret = token or os.environ.get("ATTUNE_TOKEN") or config.get("token")
    return (url.rstrip("/") if url else None), secret


class ApiBackend:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        poll_seconds: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.poll_seconds = poll_seconds  # how often follow() asks how an installation goes
        if urlsplit(self.base_url).scheme != "https" and not _loopback(self.base_url):
            raise ApiError(
                f"{self.base_url}: the API must be reached over https (the token would travel in clear)",
                error_code="API_URL_INSECURE",
            )
        # plain HTTP on loopback (the local service) goes straight through http.client: what urllib
        # does there (no proxy, no redirect followed) without importing it
        self._direct = urlsplit(self.base_url).scheme == "http" and _loopback(self.base_url)
        self._opener: urllib.request.OpenerDirector | None = None if self._direct else _opener(self.base_url)
        self._token = token

    def _send(
        self, method: str, url: str, data: bytes | None, content_type: str = "application/json"
    ) -> tuple[int, str, bytes]:
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._opener is None:
            return _send_direct(method, url, data, headers)
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http(s) only
        try:
            with self._opener.open(request, timeout=60) as response:
                return response.status, response.reason, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, str(error.reason), error.read()

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        form: tuple[bytes, str] | None = None,
    ) -> Any:
        """``form``: a body already encoded, with its content type (multipart uploads)."""
        url = f"{self.base_url}/api/v1{path}" + (f"?{urlencode(params)}" if params else "")
        if form is not None:
            status, reason, raw = self._send(method, url, form[0], form[1])
        else:
            status, reason, raw = self._send(method, url, None if json is None else _json.dumps(json).encode())
        try:
            body = _json.loads(raw)
        except ValueError:
            body = {"error": raw[:300].decode(errors="replace") or reason, "code": f"HTTP_{status}"}
        if status == 404:
            raise NotFoundError(body.get("error", "not found"), error_code=body.get("code", "NOT_FOUND"))
        if status >= 400:
            raise ApiError(
                f"{status}: {body.get('error')}",
                error_code=body.get("code", "HTTP_ERROR"),
                details=body.get("details"),
            )
        return body

    # -- the Backend interface -------------------------------------------------------------------
    def start_install(self, request: InstallRequest) -> Execution:
        from attune_cli.backends import Execution

        body = request.model_dump(mode="json", exclude={"started_by"})
        data = self._call("POST", "/packs/install", json=body)["data"]
        return Execution(arn=data["installation_id"], name=data["installation_id"])

    def start_locked_install(self, request: InstallRequest, lock: dict[str, Any]) -> Execution:
        """The stack verifies the lock (LOCK_MISMATCH if anything moved) and installs exactly it."""
        from attune_cli.backends import Execution

        body = request.model_dump(mode="json", exclude={"started_by", "locked", "locked_requirements"})
        data = self._call("POST", "/packs/install", json={**body, "lock": lock})["data"]
        return Execution(arn=data["installation_id"], name=data["installation_id"])

    def plan(self, request: InstallRequest) -> dict[str, Any]:
        body = request.model_dump(mode="json", exclude={"started_by", "locked", "locked_requirements"})
        return dict(self._call("POST", "/packs/plan", json=body)["data"])

    def lock(self, request: InstallRequest) -> dict[str, Any]:
        body = request.model_dump(mode="json", exclude={"started_by", "locked", "locked_requirements"})
        return dict(self._call("POST", "/packs/lock", json=body)["data"])

    def installation_lock(self, installation_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/packs/installs/{installation_id}/lock"))

    def execution_arn(self, installation_id: str) -> str:
        return installation_id

    def follow(
        self,
        installation_id: str,
        on_event: Callable[[dict[str, Any]], None],
        *,
        poll_seconds: float | None = None,
        timeout: float = 7200,
    ) -> ExecutionResult:
        from datetime import datetime

        from attune_cli.backends import ExecutionResult

        poll_seconds = self.poll_seconds if poll_seconds is None else poll_seconds
        announced: set[tuple[str, str]] = set()
        deadline = time.monotonic() + timeout
        while True:
            status = self._call("GET", f"/packs/installs/{installation_id}")["data"]
            for number, stage in enumerate(status.get("stages") or []):
                for kind, key in (("TaskStateEntered", "entered_at"), ("TaskStateExited", "exited_at")):
                    if stage.get(key) and (f"{number}", kind) not in announced:
                        announced.add((f"{number}", kind))
                        details = {"name": stage["state"]}
                        field = "stateEnteredEventDetails" if kind == "TaskStateEntered" else "stateExitedEventDetails"
                        on_event({"type": kind, field: details, "timestamp": datetime.fromisoformat(stage[key])})
            if status["status"] != "RUNNING":
                error = status.get("error") or {}
                return ExecutionResult(status["status"], status.get("result"), error.get("error"), error.get("cause"))
            if time.monotonic() > deadline:
                return ExecutionResult("TIMED_OUT_WAITING", None, "the CLI stopped waiting", None)
            time.sleep(poll_seconds)

    def list_packs(self) -> list[dict[str, Any]]:
        """Every installed pack, by ref: pages of up to 1000 after a cursor (each page reads only
        its own packs); from an API without cursors, numbered pages."""
        packs: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 1000}
        while True:
            body = self._call("GET", "/packs", params=params)
            pagination = body.get("pagination") or {}
            if "next_cursor" not in pagination:
                if pagination.get("pages") == 1 and not packs:  # all of them, in the first numbered page
                    return list(body["data"])
                return self._numbered_pages()
            packs.extend(body["data"])
            if not pagination["next_cursor"]:
                return packs
            params = {"limit": 1000, "cursor": pagination["next_cursor"]}

    def _numbered_pages(self) -> list[dict[str, Any]]:
        packs: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._call("GET", "/packs", params={"page": page, "page_size": 100})
            packs.extend(body["data"])
            if page >= body["pagination"]["pages"]:
                return packs
            page += 1

    def show_pack(self, ref: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/packs/{ref}")["data"])

    def remove_pack(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/packs/{ref}", params={"force": str(force).lower()})["data"])

    def rollback_pack(self, ref: str, version: str | None = None, *, force: bool = False) -> dict[str, Any]:
        return dict(self._call("POST", f"/packs/{ref}/rollback", json={"version": version, "force": force})["data"])

    def list_components(self, component_type: str, *, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return dict(self._call("GET", f"/components/{component_type}", params=params)["data"])

    def upload(self, archive: Path, *, force: bool = False, skip_tests: bool = False) -> str:
        """Upload an archive; returns the installation it starts. Archives up to the API's
        multipart limit go to POST /packs/upload (as Attune's web UI sends them); larger ones
        through a presigned POST straight to S3 (POST /packs/uploads)."""
        from attune_packs.api.bounds import MAX_MULTIPART_BYTES

        content_type = "application/zip" if archive.name.endswith(".zip") else "application/gzip"
        # the form's own fields and boundaries take a few hundred bytes of the limit
        if archive.stat().st_size <= MAX_MULTIPART_BYTES - 4096:
            form = multipart_form(
                {"force": str(force).lower(), "skip_tests": str(skip_tests).lower()},
                ("pack", archive.name, archive.read_bytes(), content_type),
            )
            started = self._call("POST", "/packs/upload", form=form)
            return str(started["data"]["installation_id"])
        if force or skip_tests:
            raise ApiError(
                f"{archive.name} is over {MAX_MULTIPART_BYTES} bytes: it installs through a presigned upload, "
                "which takes no options (--force, --skip-tests)",
                error_code="UPLOAD_OPTIONS_UNSUPPORTED",
            )
        grant = self._call("POST", "/packs/uploads", json={"filename": archive.name, "content_type": content_type})
        form = grant["data"]["upload"]
        import requests  # multipart form posts only

        uploader = requests.Session()  # no bearer token: the form's signature is the credential
        uploader.trust_env = not _loopback(form["url"])
        with archive.open("rb") as handle, uploader:
            posted = uploader.post(
                form["url"], data=form["fields"], files={"file": (archive.name, handle, content_type)}, timeout=600
            )
        if posted.status_code not in (200, 201, 204):
            raise ApiError(
                f"the upload was refused: {posted.status_code} {posted.text[:300]}", error_code="UPLOAD_FAILED"
            )
        return str(grant["data"]["installation_id"])

    def wait_until_started(self, installation_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", f"/packs/installs/{installation_id}")
                return
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def test_pack(self, ref: str) -> dict[str, Any]:
        """Run the installed version's tests again (POST /packs/{ref}/test); the running execution."""
        return dict(self._call("POST", f"/packs/{ref}/test")["data"])

    def test_execution(self, ref: str, execution_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/packs/{ref}/tests/{execution_id}")["data"])

    def test_history(self, ref: str, *, page: int = 1, page_size: int = 20) -> dict[str, Any]:
        return dict(self._call("GET", f"/packs/{ref}/tests", params={"page": page, "page_size": page_size})["data"])

    def tokens(self, method: str, path: str = "", **kwargs: Any) -> Any:
        return self._call(method, f"/tokens{path}", **kwargs)["data"]
