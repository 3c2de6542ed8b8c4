"""The local stack as a long-lived local service, and the CLI's side of it.

The service is one process per state dir (``python -m attune_cli.service --state-dir DIR``): the
embedded stack (:class:`~attune_cli.local_stack.LocalStack`) and its HTTP API
(:class:`~attune_cli.http_server.LocalApiServer`) on 127.0.0.1, holding the state in memory and
journalling changes to the state dir. It writes, in the state dir:

* ``service.json`` (0600): its pid, URL and port, once it answers;
* ``admin-token`` (0600): an admin API token it created for itself (kept across restarts while
  the table still knows it);
* ``service.log``: what it prints.

CLI commands read both files and call the API with the token, as they call a deployed stack's
API; the first command that finds no service starts one (:func:`ensure_service`). SIGTERM (``local
stop``) stops it cleanly: running builds are awaited, the state is snapshotted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

SERVICE_FILE = "service.json"
TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret
LOG_FILE = "service.log"
HEALTH_PATH = "/_local/health"
START_TIMEOUT = 180.0


class ServiceInfo(NamedTuple):
    """The running service (a named tuple: every command reads one, and importing dataclasses
    would cost each of them more than reading it)."""

    pid: int
    url: str
    state_dir: str
    token: str


def _write_private(path: Path, text: str) -> None:
    """Writes a file only its owner can read, atomically (never a moment with wider modes)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.request("GET", HEALTH_PATH)
        response = connection.getresponse()
        if response.status != 200:
            return None
        return dict(json.loads(response.read()))
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def service_info(state_dir: Path) -> ServiceInfo | None:
    """The running service of this state dir, if one answers (a stale file after a crash or a
    reboot is not a service)."""
    try:
        recorded = json.loads((state_dir / SERVICE_FILE).read_text())
        token = (state_dir / TOKEN_FILE).read_text().strip()
    except (OSError, ValueError):
        return None
    health = _health(recorded["url"])
    if health is None or health.get("pid") != recorded["pid"] or health.get("state_dir") != str(state_dir):
        return None
    return ServiceInfo(int(recorded["pid"]), str(recorded["url"]), str(state_dir), token)


def ensure_service(state_dir: Path, *, port: int = 0, quiet: bool = False) -> ServiceInfo:
    """The service of this state dir, started if none runs (one starter at a time)."""
    info = service_info(state_dir)
    if info is not None:
        return info
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = service_info(state_dir)
        if info is not None:
            return info
        return _spawn(state_dir, port, quiet=quiet)


def _spawn(state_dir: Path, port: int, *, quiet: bool) -> ServiceInfo:
    import subprocess  # only to start the service: every other command finds it running

    if not quiet:
        print(f"starting the local stack ({state_dir}) ...", file=sys.stderr, flush=True)
    (state_dir / SERVICE_FILE).unlink(missing_ok=True)
    log = (state_dir / LOG_FILE).open("ab")
    command = [sys.executable, "-m", "attune_cli.service", "--state-dir", str(state_dir), "--port", str(port)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = service_info(state_dir)
        if info is not None:
            return info
        if process.poll() is not None:
            raise RuntimeError(f"the local stack did not start: {_log_tail(state_dir)}")
        time.sleep(0.1)
    raise RuntimeError(f"the local stack did not answer within {START_TIMEOUT:.0f}s: {_log_tail(state_dir)}")


def _log_tail(state_dir: Path, lines: int = 8) -> str:
    try:
        text = (state_dir / LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) + f"\n(log: {state_dir / LOG_FILE})"


def stop_service(state_dir: Path, timeout: float = 1800.0) -> ServiceInfo | None:
    """Asks the service to stop (SIGTERM) and waits until it has saved its state and exited."""
    info = service_info(state_dir)
    if info is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(info.pid):
            return info
        time.sleep(0.1)
    raise RuntimeError(f"the local stack (pid {info.pid}) did not stop within {timeout:.0f}s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process has exited
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


# -- the service process --------------------------------------------------------------------------
def _admin_token(stack: Any) -> str:
    """The admin token kept in the state dir while the table still accepts it, else a new one."""
    from attune_packs.adapters.dynamodb import DynamoPackTable
    from attune_packs.errors import AttuneError
    from attune_packs.services.tokens import create_token, verify_token

    table = DynamoPackTable(stack.client("dynamodb"), stack.table)
    path = stack.state_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        try:
            verify_token(table, f"Bearer {token}")
            return token
        except AttuneError:
            pass
    created = create_token(table, name="local-service-admin", scopes=["admin"], ttl_days=365)
    _write_private(path, created.token + "\n")
    return created.token


def serve(state_dir: Path, port: int = 0, *, announce: Any = None) -> None:
    """Runs the service until SIGTERM or SIGINT; ``announce(url, stack)`` is called once it answers."""
    import threading

    from attune_cli.http_server import LocalApiServer
    from attune_cli.local_stack import LocalStack

    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)  # its journal and objects are the stack's data: the owner's only
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with LocalStack(state_dir) as stack, LocalApiServer(stack, port=port) as server:
        _admin_token(stack)
        record = {"pid": os.getpid(), "url": server.url, "port": int(server.url.rsplit(":", 1)[1])}
        _write_private(state_dir / SERVICE_FILE, json.dumps(record))
        if announce is not None:
            announce(server.url, stack)
        print(f"local stack serving {server.url}/api/v1 (state {state_dir}, pid {os.getpid()})", flush=True)
        stopped.wait()
        print("local stack stopping: waiting for builds, saving state", flush=True)
        (state_dir / SERVICE_FILE).unlink(missing_ok=True)
    print("local stack stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attune_cli.service")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(Path(args.state_dir).resolve(), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
